-- Keeps an account out of leases until a time; a cooldown only extends.
-- KEYS: 1 the account's hash. ARGV: 1 until (unix ms).
local current = tonumber(redis.call('HGET', KEYS[1], 'cooling_until') or '0')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'cooling_until', ARGV[1])
end
return 0
