-- Foundation: identity (teams, users, API keys), server settings, pipelines and stages.
CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    manager_id TEXT REFERENCES users (id),
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by TEXT,
    updated_by TEXT
);
CREATE UNIQUE INDEX teams_name_key ON teams (lower(name));

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'rep')),
    team_id       TEXT REFERENCES teams (id),
    active        BOOLEAN NOT NULL DEFAULT 1,
    version       INTEGER NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    created_by    TEXT,
    updated_by    TEXT
);
CREATE INDEX users_team_id_idx ON users (team_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);

CREATE TABLE pipelines (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    created_by  TEXT REFERENCES users (id),
    updated_by  TEXT REFERENCES users (id)
);
CREATE INDEX pipelines_created_at_idx ON pipelines (created_at, id);
CREATE INDEX pipelines_name_idx ON pipelines (name, id);

CREATE TABLE stages (
    id                      TEXT PRIMARY KEY,
    pipeline_id             TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    position                INTEGER NOT NULL,
    probability             INTEGER NOT NULL CHECK (probability BETWEEN 0 AND 100),
    kind                    TEXT NOT NULL CHECK (kind IN ('open', 'won', 'lost')),
    stalled_after_days      INTEGER,
    required_fields         TEXT NOT NULL DEFAULT '[]',
    exit_criteria           TEXT NOT NULL DEFAULT '[]',
    suggested_actions       TEXT NOT NULL DEFAULT '[]',
    next_action_within_days INTEGER,
    version                 INTEGER NOT NULL DEFAULT 1,
    created_at              TIMESTAMP NOT NULL,
    updated_at              TIMESTAMP NOT NULL,
    created_by              TEXT REFERENCES users (id),
    updated_by              TEXT REFERENCES users (id)
);
CREATE INDEX stages_pipeline_position_idx ON stages (pipeline_id, position);
