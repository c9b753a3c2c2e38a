-- Replaces a lease's reservation with the tokens really used; an expired
-- or unknown lease charges the account the caller names.
-- KEYS: 1 leases, 2 expiry, 3 the named account's hash.
-- ARGV: 1 prefix, 2 lease id, 3 account id, 4 actual tokens, 5 now,
--       6 today, 7 day counter TTL (seconds), 8 key id ('' = none; charged
--       like the account when the lease is late or unknown), 9 cost
--       (micro-dollars), 10 this UTC month (YYYYMM), 11 month counter TTL
--       (seconds), 12 served ('1': a success on the named account's
--       circuit, as circuit_success.lua).
-- An open lease made for a key also settles on the key: its reservation is
-- replaced by the actual count, in its day counter and in its window. The
-- cost goes to the month's spend of the lease's key, or of the named key
-- when the lease is late or unknown.
-- Returns 1 when the lease was open, 0 when it was late or unknown.
expire_due(ARGV[5])
if ARGV[12] == '1' then
  circuit_success(KEYS[3], ARGV[5])
end
local record = redis.call('HGET', KEYS[1], ARGV[2])
if record then
  local tokens, account = parse_lease(record)
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
  release(account, tokens)
  add_used(account, ARGV[6], ARGV[4], ARGV[7])
  local key = release_key(ARGV[2], tokens)
  if key then
    add_key_used(key, ARGV[6], ARGV[4], ARGV[7])
    add_key_spent(key, ARGV[10], ARGV[9], ARGV[11])
    local admitted = redis.call('ZSCORE', key_window(key), ARGV[2])
    if admitted then
      set_window_tokens(key, ARGV[2], admitted, ARGV[4])
    end
  end
  return 1
end
add_used(ARGV[3], ARGV[6], ARGV[4], ARGV[7])
if ARGV[8] ~= '' then
  add_key_used(ARGV[8], ARGV[6], ARGV[4], ARGV[7])
  add_key_spent(ARGV[8], ARGV[10], ARGV[9], ARGV[11])
end
return 0
