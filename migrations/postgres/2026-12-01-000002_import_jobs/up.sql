-- Import jobs: the uploaded file is kept in chunks until the job ends, so a job
-- survives a restart and any replica may run it (one at a time: a worker claims it and
-- keeps a heartbeat). Progress is written in the transaction of each batch.
CREATE TABLE import_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    options TEXT NOT NULL,
    signer TEXT NOT NULL,
    state TEXT NOT NULL,
    bytes_total BIGINT NOT NULL DEFAULT 0,
    rows_done BIGINT NOT NULL DEFAULT 0,
    report TEXT NOT NULL DEFAULT '{}',
    header TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    worker TEXT,
    heartbeat_at TIMESTAMP,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX import_jobs_state_idx ON import_jobs (state, created_at);
CREATE TABLE import_chunks (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE import_rejects (
    job_id TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    cells TEXT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
