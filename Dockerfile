# Build: the release binary with SQLite and libpq compiled in (libpq's TLS links the
# system OpenSSL; the rust image has its headers and pkg-config).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY openapi ./openapi
COPY tests ./tests
RUN cargo build --release --locked --bin stageflow

# Run: a small Debian with only what the binary needs.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/stageflow --create-home stageflow
COPY --from=build /src/target/release/stageflow /usr/local/bin/stageflow
USER stageflow
WORKDIR /var/lib/stageflow
ENV STAGEFLOW_BIND=0.0.0.0:8080 \
    STAGEFLOW_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/health/ready || exit 1
ENTRYPOINT ["stageflow"]
CMD ["serve"]
