-- Takes a claim for a while unless it is held: one taker per hold across
-- every replica (a health probe's, so two replicas do not both probe).
-- The key holds when its hold ends and expires then (the expiry is the
-- server's; with a caller's clock the stored end decides).
-- KEYS: 1 the claim's key. ARGV: 1 prefix, 2 now ('' = the server's
-- clock), 3 how long to hold it (ms, positive).
-- Returns 1 when this call took it, else 0.
local now = NOW
local held_until = redis.call('GET', KEYS[1])
if held_until and tonumber(held_until) > now then
  return 0
end
redis.call('SET', KEYS[1], ms_text(now + tonumber(ARGV[3])), 'PX', ARGV[3])
return 1
