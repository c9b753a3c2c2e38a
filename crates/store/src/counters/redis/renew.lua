-- Keeps an open lease until a later expiry (a long stream keeps its
-- reservation); an expiry only moves later.
-- KEYS: 1 leases, 2 expiry. ARGV: 1 prefix, 2 lease id, 3 expires at
-- (unix ms), 4 now.
-- Returns 1 when the lease is open, 0 when it was settled, expired or
-- unknown (nothing is reserved again).
expire_due(ARGV[4])
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return 0
end
local current = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]) or '0')
if tonumber(ARGV[3]) > current then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
return 1
