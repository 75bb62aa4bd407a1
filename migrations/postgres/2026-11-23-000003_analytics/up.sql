-- Analytics: frozen forecasts, and the indexes the report queries use (see docs/analytics.md).
CREATE TABLE forecast_snapshots (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    period     TEXT NOT NULL CHECK (period IN ('month', 'quarter')),
    scope      TEXT NOT NULL,
    rows       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id)
);
CREATE INDEX forecast_snapshots_created_idx ON forecast_snapshots (created_by, created_at);

CREATE INDEX opportunities_pipeline_created_idx ON opportunities (pipeline_id, created_at);
CREATE INDEX opportunities_status_closed_idx ON opportunities (status, closed_at);
CREATE INDEX stage_transitions_entered_idx ON stage_transitions (entered_at);
