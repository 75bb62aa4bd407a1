-- Back to the second layout of the report aggregates, refilled at the next start.
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
    advances           INTEGER NOT NULL,
    status             TEXT NOT NULL,
    amount_minor       BIGINT,
    closed_at          TIMESTAMP,
    lost_reason_id     TEXT
);
CREATE INDEX deal_reach_pipeline_idx ON deal_reach (pipeline_id, created_at);
CREATE INDEX deal_reach_owner_idx ON deal_reach (owner_id);

CREATE TABLE stage_stays (
    id                   TEXT PRIMARY KEY,
    opportunity_id       TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    pipeline_id          TEXT NOT NULL,
    owner_id             TEXT NOT NULL,
    stage_id             TEXT NOT NULL,
    entered_at           TIMESTAMP NOT NULL,
    left_at              TIMESTAMP,
    next_stage_id        TEXT,
    seconds              DOUBLE PRECISION,
    advanced             INTEGER NOT NULL,
    first_call_after     DOUBLE PRECISION,
    first_email_after    DOUBLE PRECISION,
    first_meeting_after  DOUBLE PRECISION,
    first_demo_after     DOUBLE PRECISION,
    first_proposal_after DOUBLE PRECISION,
    first_note_after     DOUBLE PRECISION,
    first_task_after     DOUBLE PRECISION
);
CREATE INDEX stage_stays_opportunity_idx ON stage_stays (opportunity_id);
CREATE INDEX stage_stays_pipeline_idx ON stage_stays (pipeline_id, stage_id, entered_at);
CREATE INDEX stage_stays_owner_idx ON stage_stays (owner_id);

-- Covering indexes, so that the slowest reports read only the entries of one pipeline in
-- key order (index-only scans) instead of the whole table:
-- - stage durations: closed stays by stage, sorted by duration (percentiles);
CREATE INDEX stage_stays_closed_idx ON stage_stays (pipeline_id, stage_id, seconds)
    INCLUDE (owner_id, entered_at) WHERE seconds IS NOT NULL;
-- - activity effectiveness: every number it counts, by stage;
CREATE INDEX stage_stays_activity_idx ON stage_stays (pipeline_id, stage_id)
    INCLUDE (owner_id, entered_at, seconds, advanced, first_call_after, first_email_after,
             first_meeting_after, first_demo_after, first_proposal_after, first_note_after,
             first_task_after);
-- - loss reasons: lost deals by stage and reason, with amount and scope columns.
CREATE INDEX deal_reach_lost_idx ON deal_reach (lost_from_stage_id, lost_reason_id)
    INCLUDE (amount_minor, pipeline_id, owner_id, closed_at) WHERE status = 'lost';

DROP INDEX opportunities_open_stage_idx;
CREATE INDEX opportunities_open_stage_idx ON opportunities (pipeline_id, stage_id, stage_entered_at)
    INCLUDE (owner_id) WHERE status = 'open';

INSERT INTO server_settings (key, value) VALUES ('report_aggregates', 'rebuild')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
