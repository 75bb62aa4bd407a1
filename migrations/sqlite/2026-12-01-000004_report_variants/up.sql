-- Report aggregates, third layout (see docs/analytics.md): the variants managers use
-- every week (period ranges, segments) read the aggregates instead of the stage log.
-- They are derived data, so the tables are recreated and refilled at the next start.
--
-- Both tables now carry the deal's segment keys (source, industry, company size, region,
-- tags), so that `group_by` reads no opportunity row. A stay also carries its stage's
-- kind and whether its entry was a step forward from an open stage (`advance_in`, the
-- leaderboard's "stage advance"), and deal_reach the time a lost deal was lost.
DROP TABLE stage_stays;
DROP TABLE deal_reach;

CREATE TABLE deal_reach (
    opportunity_id     TEXT PRIMARY KEY REFERENCES opportunities (id) ON DELETE CASCADE,
    pipeline_id        TEXT NOT NULL,
    owner_id           TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    entered_mask       BIGINT NOT NULL,
    lost_from_stage_id TEXT,
    lost_at            TIMESTAMP,
    was_lost           INTEGER NOT NULL,
    reopened           INTEGER NOT NULL,
    advances           INTEGER NOT NULL,
    status             TEXT NOT NULL,
    amount_minor       BIGINT,
    closed_at          TIMESTAMP,
    lost_reason_id     TEXT,
    source             TEXT,
    industry           TEXT,
    company_size       TEXT,
    region             TEXT,
    tags               TEXT NOT NULL
);
CREATE INDEX deal_reach_pipeline_idx ON deal_reach (pipeline_id, created_at);
CREATE INDEX deal_reach_owner_idx ON deal_reach (owner_id);

CREATE TABLE stage_stays (
    id                   TEXT PRIMARY KEY,
    opportunity_id       TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    pipeline_id          TEXT NOT NULL,
    owner_id             TEXT NOT NULL,
    stage_id             TEXT NOT NULL,
    stage_kind           TEXT NOT NULL,
    entered_at           TIMESTAMP NOT NULL,
    advance_in           INTEGER NOT NULL,
    left_at              TIMESTAMP,
    next_stage_id        TEXT,
    seconds              REAL,
    advanced             INTEGER NOT NULL,
    first_call_after     REAL,
    first_email_after    REAL,
    first_meeting_after  REAL,
    first_demo_after     REAL,
    first_proposal_after REAL,
    first_note_after     REAL,
    first_task_after     REAL,
    source               TEXT,
    industry             TEXT,
    company_size         TEXT,
    region               TEXT,
    tags                 TEXT NOT NULL
);
CREATE INDEX stage_stays_opportunity_idx ON stage_stays (opportunity_id);
CREATE INDEX stage_stays_pipeline_idx ON stage_stays (pipeline_id, stage_id, entered_at);
CREATE INDEX stage_stays_owner_idx ON stage_stays (owner_id);

-- Covering indexes (SQLite has no INCLUDE: the covered columns are trailing keys):
-- closed stays by stage, sorted by duration, with the segment columns; lost deals by
-- stage and reason; a pipeline's entries in a time range with what the period reports
-- count.
CREATE INDEX stage_stays_closed_idx ON stage_stays (pipeline_id, stage_id, seconds, owner_id, entered_at,
    source, industry, company_size, region, tags) WHERE seconds IS NOT NULL;
CREATE INDEX deal_reach_lost_idx ON deal_reach (lost_from_stage_id, lost_reason_id, amount_minor, pipeline_id, owner_id, closed_at)
    WHERE status = 'lost';
CREATE INDEX stage_stays_entered_idx ON stage_stays (pipeline_id, entered_at, opportunity_id, stage_id, owner_id, stage_kind, advance_in);

-- Activity effectiveness: every number it counts, by stage (as the PostgreSQL covering
-- index); won deals and deals with advances by owner (leaderboard).
CREATE INDEX stage_stays_activity_idx ON stage_stays (pipeline_id, stage_id, owner_id, entered_at, seconds,
    advanced, first_call_after, first_email_after, first_meeting_after, first_demo_after,
    first_proposal_after, first_note_after, first_task_after);
CREATE INDEX deal_reach_won_idx ON deal_reach (owner_id, closed_at, amount_minor, pipeline_id)
    WHERE status = 'won';
CREATE INDEX deal_reach_advances_idx ON deal_reach (owner_id, advances, pipeline_id) WHERE advances > 0;

-- Running stays (durations): open deals by pipeline, stage and entry time, now with the
-- segment columns.
DROP INDEX opportunities_open_stage_idx;
CREATE INDEX opportunities_open_stage_idx ON opportunities (pipeline_id, stage_id, stage_entered_at, owner_id,
    source, industry, company_size, region, tags) WHERE status = 'open';

INSERT INTO server_settings (key, value) VALUES ('report_aggregates', 'rebuild')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
