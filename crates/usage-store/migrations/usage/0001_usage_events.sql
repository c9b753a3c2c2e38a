-- One row per gateway request. The request id is the primary key, so a
-- redelivered event is skipped (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE usage_events (
    request_id        TEXT    NOT NULL PRIMARY KEY,
    started_at_ms     INTEGER NOT NULL,
    finished_at_ms    INTEGER NOT NULL,
    key_id            TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    account_id        TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    requested_model   TEXT    NOT NULL,
    upstream_model    TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_micro_usd    INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_code        TEXT    NOT NULL,
    attempts          INTEGER NOT NULL,
    streamed          INTEGER NOT NULL
);

-- Time-range scans (every usage query filters on the start time).
CREATE INDEX usage_events_started ON usage_events (started_at_ms);

-- Per-account queries and daily token totals per account.
CREATE INDEX usage_events_account_started
    ON usage_events (account_id, started_at_ms, prompt_tokens, completion_tokens);

-- Per-key reports (the most common grouping).
CREATE INDEX usage_events_key_started ON usage_events (key_id, started_at_ms);
