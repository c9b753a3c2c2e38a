-- Control data in Postgres, in the schema `control` (created before this
-- runs; the migration history of this schema lives there too, apart from
-- the usage schema's). Same meaning as the SQLite control tables: client
-- keys as SHA-256 only, provider accounts with secrets sealed with
-- AES-256-GCM by tollgate_store::crypto, times in unix seconds.
--
-- Lists are JSONB arrays of strings. Unsigned limits are BIGINT (u32 and
-- u64 values up to i64::MAX fit). Ids and hashes use the "C" collation:
-- they compare and sort by byte value whatever the database default is.

CREATE TABLE control.keys (
    id                       TEXT    COLLATE "C" PRIMARY KEY,
    name                     TEXT    NOT NULL,
    key_hash                 TEXT    COLLATE "C" NOT NULL UNIQUE,
    prefix                   TEXT    NOT NULL,
    last4                    TEXT    NOT NULL,
    profile                  TEXT    NOT NULL,
    profiles                 JSONB   NOT NULL DEFAULT '[]',
    models                   JSONB   NOT NULL DEFAULT '[]',
    rpm                      BIGINT,
    tpm                      BIGINT,
    daily_token_budget       BIGINT,
    monthly_budget_micro_usd BIGINT,
    expires_at               BIGINT,
    enabled                  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at               BIGINT  NOT NULL,
    updated_at               BIGINT  NOT NULL
);

CREATE TABLE control.accounts (
    id                TEXT    COLLATE "C" PRIMARY KEY,
    provider          TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    email             TEXT,
    secret_sealed     TEXT,
    base_url          TEXT,
    profile           TEXT    NOT NULL,
    models            JSONB   NOT NULL DEFAULT '[]',
    daily_token_limit BIGINT,
    rpm               BIGINT,
    tpm               BIGINT,
    priority          BIGINT  NOT NULL DEFAULT 0,
    weight            BIGINT  NOT NULL DEFAULT 1,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason   TEXT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);

CREATE INDEX accounts_by_profile ON control.accounts (profile);

-- Admin writes: who did what to which object, and when. The summary is a
-- JSON object of the object's non-secret fields; the store removes secret
-- fields before writing it.
CREATE TABLE control.audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    object_kind TEXT   NOT NULL,
    object_id   TEXT   NOT NULL,
    summary     JSONB  NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_by_object ON control.audit_log (object_kind, object_id);
