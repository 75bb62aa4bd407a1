-- Lead capture: sources that third-party forms and webhook senders post leads to.
CREATE TABLE capture_sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    -- JSON: {lead_field: form field name or JSON Pointer}, constants and defaults.
    field_map TEXT NOT NULL,
    constants TEXT NOT NULL DEFAULT '{}',
    default_source TEXT NOT NULL,
    source_detail TEXT,
    owner_id TEXT,
    team_id TEXT,
    round_robin_next BIGINT NOT NULL DEFAULT 0,
    dedupe_on TEXT NOT NULL DEFAULT '["email"]',
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    redirect_url TEXT,
    honeypot_field TEXT,
    min_submit_seconds INTEGER NOT NULL DEFAULT 0,
    rate_limit_per_minute INTEGER NOT NULL DEFAULT 60,
    secret TEXT,
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    active BOOLEAN NOT NULL DEFAULT 1,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL
);
-- What a source has already taken: signatures (replays are refused) and idempotency
-- keys (a repeat answers the same lead).
CREATE TABLE capture_receipts (
    source_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    lead_id TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, fingerprint)
);
CREATE INDEX capture_receipts_created_idx ON capture_receipts (created_at);

-- Outbound webhooks: subscriptions, the transactional outbox of events, and one
-- delivery per (subscription, event) with its attempts.
CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    events TEXT NOT NULL,
    pipeline_id TEXT,
    to_stage_id TEXT,
    owner_id TEXT,
    team_id TEXT,
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    locked_until TIMESTAMP,
    response_status INTEGER,
    latency_ms INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, event_seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (subscription_id, record_id, event_seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (subscription_id, event_seq);
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    response_status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
-- The stall each deal was announced for (opportunity.stalled is sent once per stay).
CREATE TABLE stall_notices (
    opportunity_id TEXT NOT NULL,
    stage_entered_at TIMESTAMP NOT NULL,
    PRIMARY KEY (opportunity_id, stage_entered_at)
);
