-- One row per gateway request, partitioned by the UTC day the request
-- started (RANGE on started_at_ms, one partition per day: see
-- crates/store/src/usage/postgres/partition.rs for names and bounds).
-- Retention drops whole day partitions instead of deleting rows.
--
-- A primary key of a partitioned table must contain the partition key, so
-- it is (started_at_ms, request_id) rather than the request id alone.
-- Idempotency still holds: an event's start time is fixed when the request
-- starts and travels inside the event, so a redelivered event carries the
-- same start time, lands in the same partition and conflicts there on the
-- same key (INSERT ... ON CONFLICT DO NOTHING skips it).
--
-- Text columns use the "C" collation: groups and account ids sort by byte
-- value whatever the database's default collation is (the order the SQLite
-- store gives), and comparisons stay cheap.
--
-- Token counts and cost are BIGINT (sums of them are reported); latency,
-- time to first token, status and attempts fit INTEGER and are stored
-- saturated at its maximum.
CREATE TABLE usage_events (
    request_id        TEXT    COLLATE "C" NOT NULL,
    started_at_ms     BIGINT  NOT NULL,
    finished_at_ms    BIGINT  NOT NULL,
    key_id            TEXT    COLLATE "C" NOT NULL,
    profile           TEXT    COLLATE "C" NOT NULL,
    account_id        TEXT    COLLATE "C" NOT NULL,
    provider          TEXT    COLLATE "C" NOT NULL,
    requested_model   TEXT    COLLATE "C" NOT NULL,
    upstream_model    TEXT    COLLATE "C" NOT NULL,
    prompt_tokens     BIGINT  NOT NULL,
    completion_tokens BIGINT  NOT NULL,
    cached_tokens     BIGINT  NOT NULL,
    cost_micro_usd    BIGINT  NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_code        TEXT    COLLATE "C" NOT NULL,
    attempts          INTEGER NOT NULL,
    streamed          BOOLEAN NOT NULL,
    -- Leading with the start time also makes this the time-range index, and
    -- keeps inserts (which arrive roughly in time order) at the index's end.
    PRIMARY KEY (started_at_ms, request_id)
) PARTITION BY RANGE (started_at_ms);

-- Safety net: a row whose day has no partition (a start time outside the
-- years 1970-9999, or a day whose partition another process has just dropped)
-- is kept here instead of failing the batch. Creating a day's partition
-- moves that day's rows out of it first.
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

-- Per-account reports, the account filter and the daily token totals per
-- account (covering, so reconciliation reads only the index).
CREATE INDEX usage_events_account_started
    ON usage_events (account_id, started_at_ms)
    INCLUDE (prompt_tokens, completion_tokens);

-- Per-key reports (the most common grouping).
CREATE INDEX usage_events_key_started ON usage_events (key_id, started_at_ms);
