-- Client keys (only the SHA-256 of each key is kept) and provider accounts
-- (secrets sealed with AES-256-GCM by tollgate_store::crypto).
-- Lists are JSON arrays of strings; times are unix seconds.

CREATE TABLE keys (
    id                       TEXT PRIMARY KEY NOT NULL,
    name                     TEXT NOT NULL,
    key_hash                 TEXT NOT NULL UNIQUE,
    prefix                   TEXT NOT NULL,
    last4                    TEXT NOT NULL,
    profile                  TEXT NOT NULL,
    profiles                 TEXT NOT NULL DEFAULT '[]',
    models                   TEXT NOT NULL DEFAULT '[]',
    rpm                      INTEGER,
    tpm                      INTEGER,
    daily_token_budget       INTEGER,
    monthly_budget_micro_usd INTEGER,
    expires_at               INTEGER,
    enabled                  INTEGER NOT NULL DEFAULT 1,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY NOT NULL,
    provider          TEXT NOT NULL,
    name              TEXT NOT NULL,
    email             TEXT,
    secret_sealed     TEXT,
    base_url          TEXT,
    profile           TEXT NOT NULL,
    models            TEXT NOT NULL DEFAULT '[]',
    daily_token_limit INTEGER,
    rpm               INTEGER,
    tpm               INTEGER,
    priority          INTEGER NOT NULL DEFAULT 0,
    weight            INTEGER NOT NULL DEFAULT 1,
    enabled           INTEGER NOT NULL DEFAULT 1,
    disabled_reason   TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE INDEX accounts_by_profile ON accounts (profile);
