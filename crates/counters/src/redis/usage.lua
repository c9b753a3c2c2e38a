-- An account's counters, expired leases released first.
-- KEYS: 1 leases, 2 expiry, 3 the account's hash.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 account id.
-- Returns {{now, used today, reserved, cooling until (0 when never), leases
-- in flight, failures in a row, 1 when a circuit is set (else 0), its end,
-- successes today, errors today}, {last used, last error at, last error,
-- latency average}} ('' for each of the last four not recorded).
local now = NOW
expire_due(now)
local state = redis.call('HMGET', KEYS[3], 'day', 'reserved', 'cooling_until', 'inflight',
  'failures', 'circuit_until', 'last_used', 'last_error_at', 'last_error', 'latency_ewma')
local today = redis.call('HMGET', activity_key(utc_day(now), ARGV[3]), 'successes', 'errors')
local used = redis.call('GET', day_key(counting_day(state[1], utc_day(now)), ARGV[3]))
local circuit_set = 0
if state[6] then
  circuit_set = 1
end
return {{now, tonumber(used or '0'), tonumber(state[2] or '0'), tonumber(state[3] or '0'),
  tonumber(state[4] or '0'), tonumber(state[5] or '0'), circuit_set, tonumber(state[6] or '0'),
  tonumber(today[1] or '0'), tonumber(today[2] or '0')},
  {state[7] or '', state[8] or '', state[9] or '', state[10] or ''}}
