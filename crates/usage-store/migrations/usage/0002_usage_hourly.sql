-- Hourly rollup of usage_events: one row per UTC hour and (key, account,
-- profile, provider, requested model). The usage store adds the rows each
-- batch actually wrote (duplicates skipped by the raw insert are not added)
-- in the same transaction as the raw insert; usage queries read whole hours
-- from here and only partial hours from usage_events.
CREATE TABLE usage_hourly (
    hour_start_ms     INTEGER NOT NULL,
    key_id            TEXT    NOT NULL,
    account_id        TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    requested_model   TEXT    NOT NULL,
    requests          INTEGER NOT NULL,
    -- Requests answered with a status of 400 or more.
    errors            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_micro_usd    INTEGER NOT NULL,
    PRIMARY KEY (hour_start_ms, key_id, account_id, profile, provider, requested_model)
) WITHOUT ROWID;

-- Per-account reports.
CREATE INDEX usage_hourly_account ON usage_hourly (account_id, hour_start_ms);

-- Backfill: the events stored before this migration (hour start floored,
-- also before 1970).
INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, profile, provider,
    requested_model, requests, errors, prompt_tokens, completion_tokens,
    cached_tokens, cost_micro_usd)
SELECT started_at_ms - ((started_at_ms % 3600000) + 3600000) % 3600000,
       key_id, account_id, profile, provider, requested_model,
       COUNT(*),
       SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens),
       SUM(cost_micro_usd)
FROM usage_events
GROUP BY 1, key_id, account_id, profile, provider, requested_model;
