-- Keeps an open lease for another TTL from now; an expiry only moves later.
-- KEYS: 1 leases, 2 expiry. ARGV: 1 prefix, 2 now ('' = the server's
-- clock), 3 lease id, 4 TTL (ms).
-- Returns 1 when the lease is open, 0 when it was settled, expired or
-- unknown (nothing is reserved again).
local now = NOW
expire_due(now)
if not is_open(redis.call('HGET', KEYS[1], ARGV[3])) then
  return 0
end
local expires_at = now + tonumber(ARGV[4])
local current = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[3]) or '0')
if expires_at > current then
  redis.call('ZADD', KEYS[2], ms_text(expires_at), ARGV[3])
end
return 1
