-- Back to the first layout of the report aggregates, refilled at the next start.
DROP INDEX opportunities_open_entered_idx;
DROP INDEX opportunities_open_stage_idx;
DROP TABLE stage_stays;
DROP TABLE deal_reach;

CREATE TABLE deal_reach (
    opportunity_id     TEXT PRIMARY KEY REFERENCES opportunities (id) ON DELETE CASCADE,
    pipeline_id        TEXT NOT NULL,
    owner_id           TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    entered_mask       BIGINT NOT NULL,
    lost_from_stage_id TEXT,
    was_lost           INTEGER NOT NULL,
    reopened           INTEGER NOT NULL,
    advances           INTEGER NOT NULL
);
CREATE INDEX deal_reach_pipeline_idx ON deal_reach (pipeline_id, created_at);
CREATE INDEX deal_reach_owner_idx ON deal_reach (owner_id);

-- One row per stay (a stage-log row and the time until the deal's next entry), with the
-- first completed activity of each type during the stay.
CREATE TABLE stage_stays (
    id                TEXT PRIMARY KEY,
    opportunity_id    TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    pipeline_id       TEXT NOT NULL,
    owner_id          TEXT NOT NULL,
    stage_id          TEXT NOT NULL,
    entered_at        TIMESTAMP NOT NULL,
    left_at           TIMESTAMP,
    next_stage_id     TEXT,
    seconds           DOUBLE PRECISION,
    first_call_at     TIMESTAMP,
    first_email_at    TIMESTAMP,
    first_meeting_at  TIMESTAMP,
    first_demo_at     TIMESTAMP,
    first_proposal_at TIMESTAMP,
    first_note_at     TIMESTAMP,
    first_task_at     TIMESTAMP
);
CREATE INDEX stage_stays_opportunity_idx ON stage_stays (opportunity_id);
CREATE INDEX stage_stays_pipeline_idx ON stage_stays (pipeline_id, stage_id, entered_at);
CREATE INDEX stage_stays_owner_idx ON stage_stays (owner_id);

INSERT INTO server_settings (key, value) VALUES ('report_aggregates', 'rebuild')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
