-- Raises an account's tokens used today to at least a count (the usage
-- store's total, at reconciliation); never lowers it. The day is the one
-- usage.lua reads, and a counter it writes expires like one settle wrote.
-- KEYS: 1 the account's hash.
-- ARGV: 1 prefix, 2 account id, 3 today, 4 tokens, 5 day counter TTL
--       (seconds).
-- Returns the count before.
local charged_day = redis.call('HGET', KEYS[1], 'day')
local day = counting_day(charged_day, ARGV[3])
local counter = day_key(day, ARGV[2])
local before = tonumber(redis.call('GET', counter) or '0')
if tonumber(ARGV[4]) > before then
  if day ~= charged_day then
    redis.call('HSET', KEYS[1], 'day', day)
  end
  redis.call('SET', counter, ARGV[4], 'EX', ARGV[5])
end
return before
