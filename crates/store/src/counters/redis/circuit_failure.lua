-- Counts a server failure on an account and opens its circuit at the
-- threshold (see counters.rs for the rules).
-- KEYS: 1 the account's hash.
-- ARGV: 1 threshold (at least 1), 2 base backoff (ms, positive), 3 longest
--       backoff (ms, at least the base), 4 now, 5 the latest time a circuit
--       may end (ms).
-- Returns {1, open until} when this failure opened the circuit, else {0, 0}.
local threshold, base, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'circuit_until', 'backoff', 'failures')
local backoff
if state[1] then
  if tonumber(state[1]) > now then
    -- Open: the failure comes from a request made before it opened.
    return {0, 0}
  end
  -- Half-open: the probe (or a request still running) failed.
  backoff = math.min(math.max(tonumber(state[2] or '0') * 2, base), longest)
else
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if failures < threshold then
    return {0, 0}
  end
  backoff = base
end
local open_until = math.min(now + backoff, tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'circuit_until', open_until, 'backoff', backoff)
redis.call('HDEL', KEYS[1], 'failures', 'probe')
return {1, open_until}
