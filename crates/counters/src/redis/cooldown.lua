-- Keeps an account out of leases for a while from now; a cooldown only
-- extends.
-- KEYS: 1 the account's hash. ARGV: 1 prefix, 2 now ('' = the server's
-- clock), 3 how long (ms).
-- Returns when the cooldown ends.
local until_ms = NOW + tonumber(ARGV[3])
local current = tonumber(redis.call('HGET', KEYS[1], 'cooling_until') or '0')
if until_ms > current then
  redis.call('HSET', KEYS[1], 'cooling_until', ms_text(until_ms))
  return until_ms
end
return current
