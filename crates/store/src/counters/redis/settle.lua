-- Replaces a lease's reservation with the tokens really used; an expired
-- or unknown lease charges the account the caller names.
-- KEYS: 1 leases, 2 expiry, 3 the named account's hash.
-- ARGV: 1 prefix, 2 lease id, 3 account id, 4 actual tokens, 5 now,
--       6 today, 7 day counter TTL (seconds), 8 key id ('' = none; charged
--       like the account when the lease is late or unknown).
-- An open lease made for a key also settles on the key: its reservation is
-- replaced by the actual count, in its day counter and in its window.
-- Returns 1 when the lease was open, 0 when it was late or unknown.
expire_due(ARGV[5])
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
end
return 0
