-- Counts a server failure on an account and opens its circuit at the
-- threshold (see counters.rs for the rules).
-- KEYS: 1 the account's hash.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 threshold (at least
--       1), 4 base backoff (ms, positive), 5 longest backoff (ms, at least
--       the base).
-- Returns {1, open until} when this failure opened the circuit, else {0, 0}.
local threshold, base, longest = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = NOW
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
local open_until = math.min(now + backoff, MAX_EXACT_MS)
redis.call('HSET', KEYS[1], 'circuit_until', ms_text(open_until), 'backoff', ms_text(backoff))
redis.call('HDEL', KEYS[1], 'failures', 'probe')
return {1, open_until}
