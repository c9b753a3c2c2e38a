-- Hourly rollup of usage_events: one row per UTC hour and (key, account,
-- profile, provider, requested model). The usage store adds the rows each
-- batch actually wrote (INSERT ... ON CONFLICT DO NOTHING RETURNING: skipped
-- duplicates are not added) in the same transaction as the raw insert; usage
-- queries read whole hours from here and only partial hours from
-- usage_events.
--
-- Not partitioned, and untouched by retention: dropping old day partitions
-- of usage_events keeps their hourly totals.
--
-- Text columns use the "C" collation, like usage_events: groups sort by byte
-- value.
CREATE TABLE usage_hourly (
    hour_start_ms     BIGINT NOT NULL,
    key_id            TEXT   COLLATE "C" NOT NULL,
    account_id        TEXT   COLLATE "C" NOT NULL,
    profile           TEXT   COLLATE "C" NOT NULL,
    provider          TEXT   COLLATE "C" NOT NULL,
    requested_model   TEXT   COLLATE "C" NOT NULL,
    requests          BIGINT NOT NULL,
    -- Requests answered with a status of 400 or more.
    errors            BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    cost_micro_usd    BIGINT NOT NULL,
    PRIMARY KEY (hour_start_ms, key_id, account_id, profile, provider, requested_model)
);

-- Per-account reports.
CREATE INDEX usage_hourly_account ON usage_hourly (account_id, hour_start_ms);

-- Backfill: the events stored before this migration. The lock keeps writers
-- that do not maintain the rollup yet from adding events between the backfill
-- and the commit (they wait for it).
LOCK TABLE usage_events IN SHARE MODE;

INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, profile, provider,
    requested_model, requests, errors, prompt_tokens, completion_tokens,
    cached_tokens, cost_micro_usd)
SELECT started_at_ms - ((started_at_ms % 3600000) + 3600000) % 3600000,
       key_id, account_id, profile, provider, requested_model,
       COUNT(*),
       COUNT(*) FILTER (WHERE status >= 400),
       SUM(prompt_tokens)::BIGINT, SUM(completion_tokens)::BIGINT,
       SUM(cached_tokens)::BIGINT, SUM(cost_micro_usd)::BIGINT
FROM usage_events
GROUP BY 1, key_id, account_id, profile, provider, requested_model;
