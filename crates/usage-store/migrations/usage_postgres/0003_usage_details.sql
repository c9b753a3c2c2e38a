-- The parts of a request's tokens priced apart (cache writes for 5 minutes
-- and 1 hour, reasoning; cache reads are cached_tokens), and whether the
-- model catalog priced it: priced = FALSE means cost_micro_usd is 0 because
-- the price is unknown, not because the request was free. The rollup counts
-- the unpriced requests of each hour.
--
-- Columns added to the partitioned table reach every partition (the
-- default one included); a constant default needs no table rewrite.
ALTER TABLE usage_events
    ADD COLUMN cache_write_5m_tokens BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens      BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN priced                BOOLEAN NOT NULL DEFAULT TRUE;

ALTER TABLE usage_hourly
    ADD COLUMN cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN unpriced_requests     BIGINT NOT NULL DEFAULT 0;

-- Backfill: the price table before the catalog priced no model at zero, so
-- an earlier request with tokens and no cost was one it had no price for.
-- The ALTERs above hold their locks until the migration commits, so no
-- writer adds events between the backfill and the commit.
UPDATE usage_events SET priced = FALSE
WHERE cost_micro_usd = 0 AND prompt_tokens + completion_tokens > 0;

UPDATE usage_hourly SET unpriced_requests = counted.requests
FROM (
    SELECT started_at_ms - ((started_at_ms % 3600000) + 3600000) % 3600000 AS hour_start_ms,
           key_id, account_id, profile, provider, requested_model,
           COUNT(*) AS requests
    FROM usage_events
    WHERE NOT priced
    GROUP BY 1, key_id, account_id, profile, provider, requested_model
) AS counted
WHERE usage_hourly.hour_start_ms = counted.hour_start_ms
  AND usage_hourly.key_id = counted.key_id
  AND usage_hourly.account_id = counted.account_id
  AND usage_hourly.profile = counted.profile
  AND usage_hourly.provider = counted.provider
  AND usage_hourly.requested_model = counted.requested_model;
