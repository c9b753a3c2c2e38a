-- Shared by every script (prepended to each).
-- ARGV[1] is the key prefix, hash tag included, so every key built here
-- lands in the slot of the keys passed in KEYS; ARGV[2] is the time to
-- decide at, empty for the Redis server's clock (see clock_now).
--
-- Layout under the prefix:
--   leases             hash: lease id -> "<tokens>:<account id>" while
--                      open, then "settled" until it is forgotten (so a
--                      repeated settle is known)
--   expiry             sorted set: lease id scored by its expiry (unix
--                      ms), or by when a settled one is forgotten
--   acct:<account>     hash: reserved (open reservations), cooling_until
--                      (unix ms), day (the newest UTC day it was charged on),
--                      inflight (open leases), and its circuit: failures
--                      (in a row while closed), circuit_until (set from
--                      opening until a success closes it: open before,
--                      half-open from), backoff (ms it opened for last),
--                      probe (the lease id probing it half-open); and its
--                      activity: last_used and last_error_at (unix ms),
--                      last_error (the error class label), latency_ewma
--                      (the upstream latency average, whole microseconds)
--   activity:<day>:<acct>  hash: successes and errors on that UTC day;
--                      expires like used:
--   rr:<pool>          round-robin cursor: grants made in the pool; expires
--                      when idle
--   used:<day>:<acct>  tokens settled on that UTC day; expires a few days
--                      after its last write, so no job resets anything
--   lease_keys         hash: lease id -> client key id, for leases made for
--                      a key with limits
--   key:<key>          hash: reserved, day (as for an account), month
--                      (the newest UTC month, YYYYMM, its spend was
--                      charged in)
--   kused:<day>:<key>  tokens the key settled on that UTC day (as used:)
--   kspend:<month>:<key>  micro-dollars the key settled in that UTC month;
--                      expires some 40 days after its last write
--   kwin:<key>         sorted set: lease ids of the key's requests in its
--                      sliding window, scored by admission time (unix ms)
--   ktok:<key>         hash: lease id -> tokens of a request in kwin
--                      (reserved, then actual once settled)
--   khold:<key>        sorted set: the lease ids of kwin whose tokens are
--                      above 0, scored as in kwin
--   key:<key> also keeps window_tokens, the sum of ktok over kwin, so a
--   lease never reads the whole window
local PREFIX = ARGV[1]

-- The time every decision reads: the Redis server's own clock (TIME), one
-- clock for every quota replica whatever theirs say, so a replica with a
-- skewed clock can neither expire another's leases early nor move the UTC
-- day. A script given a time instead (ARGV 2 not empty) uses it: only
-- tests that drive time by hand do that.
local MS_PER_DAY = 86400000
-- As counters::IN_FLIGHT_RETRY_MS.
local IN_FLIGHT_RETRY_MS = 1000
-- Times are kept within what a double holds exactly.
local MAX_EXACT_MS = 9007199254740991

local function clock_now(given)
  if given ~= '' then
    return tonumber(given)
  end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local NOW = clock_now(ARGV[2])

-- A time as the exact integer text Redis stores.
local function ms_text(ms)
  return string.format('%.0f', math.max(math.min(ms, MAX_EXACT_MS), -MAX_EXACT_MS))
end

-- The UTC day (days since 1970-01-01) of a time, as key text.
local function utc_day(ms)
  return string.format('%.0f', math.floor(ms / MS_PER_DAY))
end

local function next_utc_midnight(ms)
  return (math.floor(ms / MS_PER_DAY) + 1) * MS_PER_DAY
end

-- The proleptic Gregorian year and month of a day number (as
-- tollgate_core::clock::civil_from_days).
local function civil_from_days(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local month = mp + 3
  if mp >= 10 then
    month = mp - 9
  end
  local year = yoe + era * 400
  if month <= 2 then
    year = year + 1
  end
  return year, month
end

-- The day number of the 1st of a month.
local function days_from_civil(year, month)
  if month <= 2 then
    year = year - 1
  end
  local era = math.floor(year / 400)
  local yoe = year - era * 400
  local mp = (month + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- The UTC calendar month of a time as YYYYMM text, and the first instant
-- of the month after it.
local function utc_month(ms)
  local year, month = civil_from_days(math.floor(ms / MS_PER_DAY))
  local next_year, next_month = year, month + 1
  if month == 12 then
    next_year, next_month = year + 1, 1
  end
  return string.format('%d', year * 100 + month), days_from_civil(next_year, next_month) * MS_PER_DAY
end

local LEASES = PREFIX .. 'leases'
-- What leases holds for a settled lease until it is forgotten, so a
-- repeated settle is known (settle.lua); expiry scores it by then.
local SETTLED = 'settled'
local EXPIRY = PREFIX .. 'expiry'
local LEASE_KEYS = PREFIX .. 'lease_keys'

local function account_key(account)
  return PREFIX .. 'acct:' .. account
end

-- Records that an account served a request: restarts the failure count of
-- a closed circuit, closes a half-open one; an open one is left alone.
-- Returns 1 when this closed the circuit, else 0.
local function circuit_success(hash, now)
  local circuit_until = redis.call('HGET', hash, 'circuit_until')
  if circuit_until and tonumber(circuit_until) > tonumber(now) then
    return 0
  end
  redis.call('HDEL', hash, 'failures', 'circuit_until', 'backoff', 'probe')
  if circuit_until then
    return 1
  end
  return 0
end

local function day_key(day, account)
  return PREFIX .. 'used:' .. day .. ':' .. account
end

local function activity_key(day, account)
  return PREFIX .. 'activity:' .. day .. ':' .. account
end

-- Counts one more success or error (field) on the account's UTC day.
local function count_activity(account, now, field, day_ttl_secs)
  local counter = activity_key(utc_day(now), account)
  redis.call('HINCRBY', counter, field, 1)
  redis.call('EXPIRE', counter, day_ttl_secs)
end

local function key_hash(key)
  return PREFIX .. 'key:' .. key
end

local function key_day_key(day, key)
  return PREFIX .. 'kused:' .. day .. ':' .. key
end

local function key_spend_key(month, key)
  return PREFIX .. 'kspend:' .. month .. ':' .. key
end

local function key_window(key)
  return PREFIX .. 'kwin:' .. key
end

local function key_tokens(key)
  return PREFIX .. 'ktok:' .. key
end

local function key_held(key)
  return PREFIX .. 'khold:' .. key
end

-- The field of key:<key> holding the tokens of the requests in kwin.
local WINDOW_TOKENS = 'window_tokens'

-- Sets the tokens of a request still in its key's window (admitted at
-- admitted, its kwin score) and keeps window_tokens and khold in step.
-- tokens is the string the caller sent (exact).
local function set_window_tokens(key, lease_id, admitted, tokens)
  local counted, held = key_tokens(key), key_held(key)
  local before = tonumber(redis.call('HGET', counted, lease_id) or '0')
  redis.call('HSET', counted, lease_id, tokens)
  local change = tonumber(tokens) - before
  if change ~= 0 then
    redis.call('HINCRBY', key_hash(key), WINDOW_TOKENS, change)
  end
  if tonumber(tokens) > 0 then
    redis.call('ZADD', held, admitted, lease_id)
    local ttl = redis.call('PTTL', key_window(key))
    if ttl > 0 then
      redis.call('PEXPIRE', held, ttl)
    end
  else
    redis.call('ZREM', held, lease_id)
  end
end

-- The day an account's counter is read and charged on: today, unless a
-- caller whose clock is ahead already charged a later day (the counter of
-- an account never goes back to an earlier day).
local function counting_day(charged_day, today)
  if charged_day and tonumber(charged_day) > tonumber(today) then
    return charged_day
  end
  return today
end

-- Whether a leases record is an open lease (not absent, not settled).
local function is_open(record)
  return record and record ~= SETTLED
end

local function parse_lease(record)
  local tokens, account = string.match(record, '^(%d+):(.*)$')
  return tonumber(tokens), account
end

local function release_from(hash, tokens)
  -- 0 - tokens, not -tokens: Redis refuses the '-0' that -0 would send.
  if redis.call('HINCRBY', hash, 'reserved', 0 - tokens) < 0 then
    redis.call('HSET', hash, 'reserved', 0)
  end
end

-- Releases a lease's reservation and its count in flight on its account.
local function release(account, tokens)
  local hash = account_key(account)
  release_from(hash, tokens)
  if redis.call('HINCRBY', hash, 'inflight', -1) < 0 then
    redis.call('HSET', hash, 'inflight', 0)
  end
end

-- Adds tokens to the day counter of an account or key whose hash records
-- the newest period charged in field (a day, or a month for a key's
-- spend); counter_of(period, id) names the counter.
local function charge_day(hash, field, counter_of, id, today, tokens, day_ttl_secs)
  local charged_day = redis.call('HGET', hash, field)
  local day = counting_day(charged_day, today)
  if day ~= charged_day then
    redis.call('HSET', hash, field, day)
  end
  local counter = counter_of(day, id)
  redis.call('INCRBY', counter, tokens)
  redis.call('EXPIRE', counter, day_ttl_secs)
end

-- Raises the day counter of an account or key (as charge_day names it) to
-- at least tokens; never lowers it. Returns the count before.
local function raise_day(hash, counter_of, id, today, tokens, day_ttl_secs, field)
  field = field or 'day'
  local charged_day = redis.call('HGET', hash, field)
  local day = counting_day(charged_day, today)
  local counter = counter_of(day, id)
  local before = tonumber(redis.call('GET', counter) or '0')
  if tonumber(tokens) > before then
    if day ~= charged_day then
      redis.call('HSET', hash, field, day)
    end
    redis.call('SET', counter, tokens, 'EX', day_ttl_secs)
  end
  return before
end

local function add_used(account, today, tokens, day_ttl_secs)
  charge_day(account_key(account), 'day', day_key, account, today, tokens, day_ttl_secs)
end

local function add_key_used(key, today, tokens, day_ttl_secs)
  charge_day(key_hash(key), 'day', key_day_key, key, today, tokens, day_ttl_secs)
end

-- Adds micro-dollars to the key's spend in month (YYYYMM); nothing for a
-- free request.
local function add_key_spent(key, month, cost, month_ttl_secs)
  if tonumber(cost) > 0 then
    charge_day(key_hash(key), 'month', key_spend_key, key, month, cost, month_ttl_secs)
  end
end

-- Releases a lease's reservation on its key, if it was made for one.
local function release_key(lease_id, tokens)
  local key = redis.call('HGET', LEASE_KEYS, lease_id)
  if key then
    redis.call('HDEL', LEASE_KEYS, lease_id)
    release_from(key_hash(key), tokens)
  end
  return key
end

-- Releases every lease that expired at or before now, and forgets the
-- settled ones due; returns how many expired.
local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', ms_text(now))
  if #due == 0 then
    return 0
  end
  local expired = 0
  for _, lease_id in ipairs(due) do
    local record = redis.call('HGET', LEASES, lease_id)
    if record then
      redis.call('HDEL', LEASES, lease_id)
    end
    if is_open(record) then
      local tokens, account = parse_lease(record)
      release(account, tokens)
      release_key(lease_id, tokens)
      expired = expired + 1
    end
  end
  redis.call('ZREMRANGEBYSCORE', EXPIRY, '-inf', ms_text(now))
  return expired
end
