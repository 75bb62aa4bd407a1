-- Core CRM: scoring rules, leads, accounts, contacts, loss reasons, opportunities,
-- the append-only stage log, activities.
CREATE TABLE scoring_rules (
    id       TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    field    TEXT NOT NULL,
    value    TEXT NOT NULL,
    points   INTEGER NOT NULL,
    label    TEXT NOT NULL
);

INSERT INTO scoring_rules (id, position, field, value, points, label) VALUES
  ('bant-budget-approved',      0, 'bant.budget',    'approved',         25, '预算已批准'),
  ('bant-budget-planned',       1, 'bant.budget',    'planned',          15, '预算在规划中'),
  ('bant-authority-decision',   2, 'bant.authority', 'decision_maker',   25, '联系人是决策人'),
  ('bant-authority-influencer', 3, 'bant.authority', 'influencer',       12, '联系人能影响决策'),
  ('bant-need-high',            4, 'bant.need',      'high',             25, '需求明确且迫切'),
  ('bant-need-medium',          5, 'bant.need',      'medium',           12, '有一定需求'),
  ('bant-timeline-3m',          6, 'bant.timeline',  'within_3_months',  25, '三个月内采购'),
  ('bant-timeline-6m',          7, 'bant.timeline',  'within_6_months',  12, '半年内采购'),
  ('bant-timeline-1y',          8, 'bant.timeline',  'within_12_months',  5, '一年内采购');

CREATE TABLE leads (
    id                       TEXT PRIMARY KEY,
    first_name               TEXT,
    last_name                TEXT,
    email                    TEXT,
    phone                    TEXT,
    company                  TEXT,
    job_title                TEXT,
    industry                 TEXT,
    company_size             TEXT,
    region                   TEXT,
    country                  TEXT,
    source                   TEXT NOT NULL,
    source_detail            TEXT,
    interest                 TEXT,
    status                   TEXT NOT NULL,
    bant                     TEXT NOT NULL,
    score                    INTEGER NOT NULL,
    score_breakdown          TEXT NOT NULL,
    tags                     TEXT NOT NULL,
    owner_id                 TEXT NOT NULL REFERENCES users (id),
    next_follow_up_at        TIMESTAMP,
    last_activity_at         TIMESTAMP,
    external_id              TEXT,
    custom                   TEXT NOT NULL,
    converted_at             TIMESTAMP,
    converted_opportunity_id TEXT,
    disqualified_reason      TEXT,
    version                  INTEGER NOT NULL DEFAULT 1,
    created_at               TIMESTAMP NOT NULL,
    updated_at               TIMESTAMP NOT NULL,
    created_by               TEXT,
    updated_by               TEXT
);
CREATE UNIQUE INDEX leads_email_key ON leads (email);
CREATE UNIQUE INDEX leads_external_id_key ON leads (external_id);
CREATE INDEX leads_owner_created_idx ON leads (owner_id, created_at);
CREATE INDEX leads_created_idx ON leads (created_at, id);
CREATE INDEX leads_status_idx ON leads (status);
CREATE INDEX leads_follow_up_idx ON leads (next_follow_up_at);

CREATE TABLE accounts (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    industry     TEXT,
    company_size TEXT,
    region       TEXT,
    website      TEXT,
    owner_id     TEXT NOT NULL REFERENCES users (id),
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    created_by   TEXT,
    updated_by   TEXT
);
CREATE INDEX accounts_name_idx ON accounts (lower(name));
CREATE INDEX accounts_owner_idx ON accounts (owner_id);

CREATE TABLE contacts (
    id         TEXT PRIMARY KEY,
    first_name TEXT,
    last_name  TEXT,
    email      TEXT,
    phone      TEXT,
    account_id TEXT REFERENCES accounts (id),
    owner_id   TEXT NOT NULL REFERENCES users (id),
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by TEXT,
    updated_by TEXT
);
CREATE INDEX contacts_email_idx ON contacts (email);
CREATE INDEX contacts_account_idx ON contacts (account_id);
CREATE INDEX contacts_owner_idx ON contacts (owner_id);

CREATE TABLE loss_reasons (
    id         TEXT PRIMARY KEY,
    label      TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    position   INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO loss_reasons (id, label, active, position, created_at) VALUES
  ('budget',         '客户预算不足',   TRUE, 0, (now() AT TIME ZONE 'utc')),
  ('decision_chain', '决策链复杂或变化', TRUE, 1, (now() AT TIME ZONE 'utc')),
  ('competitor',     '竞争对手介入',   TRUE, 2, (now() AT TIME ZONE 'utc')),
  ('need_changed',   '需求发生变化',   TRUE, 3, (now() AT TIME ZONE 'utc')),
  ('late_follow_up', '销售跟进不及时', TRUE, 4, (now() AT TIME ZONE 'utc')),
  ('other',          '其他',          TRUE, 5, (now() AT TIME ZONE 'utc'));

CREATE TABLE opportunities (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    pipeline_id         TEXT NOT NULL REFERENCES pipelines (id),
    stage_id            TEXT NOT NULL REFERENCES stages (id),
    status              TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    amount_minor        BIGINT,
    currency            TEXT NOT NULL,
    probability         INTEGER,
    expected_close_date DATE,
    account_id          TEXT REFERENCES accounts (id),
    contact_id          TEXT REFERENCES contacts (id),
    lead_id             TEXT REFERENCES leads (id),
    owner_id            TEXT NOT NULL REFERENCES users (id),
    source              TEXT,
    industry            TEXT,
    company_size        TEXT,
    region              TEXT,
    tags                TEXT NOT NULL,
    next_action_text    TEXT,
    next_action_due_at  TIMESTAMP,
    lost_reason_id      TEXT REFERENCES loss_reasons (id),
    lost_note           TEXT,
    stage_entered_at    TIMESTAMP NOT NULL,
    last_activity_at    TIMESTAMP,
    closed_at           TIMESTAMP,
    external_id         TEXT,
    custom              TEXT NOT NULL,
    version             INTEGER NOT NULL DEFAULT 1,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    created_by          TEXT,
    updated_by          TEXT
);
CREATE UNIQUE INDEX opportunities_external_id_key ON opportunities (external_id);
CREATE INDEX opportunities_created_idx ON opportunities (created_at, id);
CREATE INDEX opportunities_owner_idx ON opportunities (owner_id, created_at);
CREATE INDEX opportunities_pipeline_stage_idx ON opportunities (pipeline_id, stage_id);
CREATE INDEX opportunities_stage_idx ON opportunities (stage_id);
CREATE INDEX opportunities_status_idx ON opportunities (status, expected_close_date);
CREATE INDEX opportunities_next_action_idx ON opportunities (next_action_due_at);

CREATE TABLE stage_transitions (
    id             TEXT PRIMARY KEY,
    -- No foreign key: the log outlives a deleted opportunity and is never rewritten.
    opportunity_id TEXT NOT NULL,
    pipeline_id    TEXT NOT NULL,
    from_stage_id  TEXT,
    to_stage_id    TEXT NOT NULL,
    entered_at     TIMESTAMP NOT NULL,
    actor_id       TEXT,
    channel        TEXT NOT NULL CHECK (channel IN ('api', 'import', 'capture', 'system')),
    note           TEXT
);
CREATE INDEX stage_transitions_opportunity_idx ON stage_transitions (opportunity_id, entered_at, id);
CREATE INDEX stage_transitions_pipeline_idx ON stage_transitions (pipeline_id, entered_at);

CREATE TABLE activities (
    id             TEXT PRIMARY KEY,
    type           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    body           TEXT,
    lead_id        TEXT REFERENCES leads (id),
    opportunity_id TEXT REFERENCES opportunities (id),
    due_at         TIMESTAMP,
    completed_at   TIMESTAMP,
    outcome        TEXT,
    owner_id       TEXT NOT NULL REFERENCES users (id),
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    created_by     TEXT,
    updated_by     TEXT,
    CHECK ((lead_id IS NULL) <> (opportunity_id IS NULL))
);
CREATE INDEX activities_lead_idx ON activities (lead_id);
CREATE INDEX activities_opportunity_idx ON activities (opportunity_id, completed_at);
CREATE INDEX activities_owner_due_idx ON activities (owner_id, due_at);
CREATE INDEX activities_created_idx ON activities (created_at, id);
