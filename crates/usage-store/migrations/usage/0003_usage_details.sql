-- The parts of a request's tokens priced apart (cache writes for 5 minutes
-- and 1 hour, reasoning; cache reads are cached_tokens), and whether the
-- model catalog priced it: priced = 0 means cost_micro_usd is 0 because the
-- price is unknown, not because the request was free. The rollup counts
-- the unpriced requests of each hour.
ALTER TABLE usage_events ADD COLUMN cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN reasoning_tokens      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN priced                INTEGER NOT NULL DEFAULT 1;

ALTER TABLE usage_hourly ADD COLUMN cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN reasoning_tokens      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN unpriced_requests     INTEGER NOT NULL DEFAULT 0;

-- Backfill: the price table before the catalog priced no model at zero, so
-- an earlier request with tokens and no cost was one it had no price for.
UPDATE usage_events SET priced = 0
WHERE cost_micro_usd = 0 AND prompt_tokens + completion_tokens > 0;

UPDATE usage_hourly SET unpriced_requests = counted.requests
FROM (
    SELECT started_at_ms - ((started_at_ms % 3600000) + 3600000) % 3600000 AS hour_start_ms,
           key_id, account_id, profile, provider, requested_model,
           COUNT(*) AS requests
    FROM usage_events
    WHERE priced = 0
    GROUP BY 1, key_id, account_id, profile, provider, requested_model
) AS counted
WHERE usage_hourly.hour_start_ms = counted.hour_start_ms
  AND usage_hourly.key_id = counted.key_id
  AND usage_hourly.account_id = counted.account_id
  AND usage_hourly.profile = counted.profile
  AND usage_hourly.provider = counted.provider
  AND usage_hourly.requested_model = counted.requested_model;
