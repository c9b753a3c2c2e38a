-- Replaces a lease's reservation with the tokens really used; an expired
-- or unknown lease charges the account the caller names. Settling is
-- idempotent: a settled lease stays in leases as "settled", scored in
-- expiry by when it is forgotten (ARGV 11 after the settle), and settling
-- it again charges nothing, so a caller may retry a settle whose answer it
-- lost. Expiring due leases forgets the settled ones due.
-- KEYS: 1 leases, 2 expiry, 3 the named account's hash.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 lease id, 4 account
--       id, 5 actual tokens, 6 day counter TTL (seconds), 7 key id ('' =
--       none; charged like the account when the lease is late or
--       unknown), 8 cost (micro-dollars), 9 month counter TTL (seconds),
--       10 served ('1': a success on the named account's circuit, as
--       circuit_success.lua, and an activity success), 11 how long a
--       settled lease is remembered (ms; the lease TTL), 12 the upstream
--       call's latency (µs, folded into the account's average; '' when
--       not measured).
-- An open lease made for a key also settles on the key: its reservation is
-- replaced by the actual count, in its day counter and in its window. The
-- cost goes to the month's spend of the lease's key, or of the named key
-- when the lease is late or unknown.
-- Returns 1 when the lease was open, 0 when it was late or unknown, 2 when
-- it was settled already (nothing changed).
local now = NOW
local lease_id = ARGV[3]
local today = utc_day(now)
expire_due(now)
local record = redis.call('HGET', KEYS[1], lease_id)
if record == SETTLED then
  return 2
end
if ARGV[10] == '1' then
  circuit_success(KEYS[3], now)
  count_activity(ARGV[4], now, 'successes', ARGV[6])
  if ARGV[12] ~= '' then
    local average = tonumber(ARGV[12])
    local before = redis.call('HGET', KEYS[3], 'latency_ewma')
    if before then
      average = math.floor((average + 4 * tonumber(before) + 2) / 5)
    end
    redis.call('HSET', KEYS[3], 'last_used', ms_text(now),
      'latency_ewma', string.format('%.0f', average))
  else
    redis.call('HSET', KEYS[3], 'last_used', ms_text(now))
  end
end
-- Remembered as settled, for a settle sent again.
redis.call('HSET', KEYS[1], lease_id, SETTLED)
redis.call('ZADD', KEYS[2], ms_text(now + tonumber(ARGV[11])), lease_id)
if record then
  local tokens, account = parse_lease(record)
  release(account, tokens)
  add_used(account, today, ARGV[5], ARGV[6])
  local key = release_key(lease_id, tokens)
  if key then
    add_key_used(key, today, ARGV[5], ARGV[6])
    add_key_spent(key, (utc_month(now)), ARGV[8], ARGV[9])
    local admitted = redis.call('ZSCORE', key_window(key), lease_id)
    if admitted then
      set_window_tokens(key, lease_id, admitted, ARGV[5])
    end
  end
  return 1
end
add_used(ARGV[4], today, ARGV[5], ARGV[6])
if ARGV[7] ~= '' then
  add_key_used(ARGV[7], today, ARGV[5], ARGV[6])
  add_key_spent(ARGV[7], (utc_month(now)), ARGV[8], ARGV[9])
end
return 0
