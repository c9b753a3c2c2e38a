-- Shared by the lease, settle, usage and sweep scripts (prepended to each).
-- ARGV[1] is the key prefix, hash tag included, so every key built here
-- lands in the slot of the keys passed in KEYS.
--
-- Layout under the prefix:
--   leases             hash: lease id -> "<tokens>:<account id>"
--   expiry             sorted set: lease id scored by its expiry (unix ms)
--   acct:<account>     hash: reserved (open reservations), cooling_until
--                      (unix ms), day (the newest UTC day it was charged on)
--   used:<day>:<acct>  tokens settled on that UTC day; expires a few days
--                      after its last write, so no job resets anything
local PREFIX = ARGV[1]
local LEASES = PREFIX .. 'leases'
local EXPIRY = PREFIX .. 'expiry'

local function account_key(account)
  return PREFIX .. 'acct:' .. account
end

local function day_key(day, account)
  return PREFIX .. 'used:' .. day .. ':' .. account
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

local function parse_lease(record)
  local tokens, account = string.match(record, '^(%d+):(.*)$')
  return tonumber(tokens), account
end

local function release(account, tokens)
  local key = account_key(account)
  if redis.call('HINCRBY', key, 'reserved', -tokens) < 0 then
    redis.call('HSET', key, 'reserved', 0)
  end
end

local function add_used(account, today, tokens, day_ttl_secs)
  local key = account_key(account)
  local charged_day = redis.call('HGET', key, 'day')
  local day = counting_day(charged_day, today)
  if day ~= charged_day then
    redis.call('HSET', key, 'day', day)
  end
  local counter = day_key(day, account)
  redis.call('INCRBY', counter, tokens)
  redis.call('EXPIRE', counter, day_ttl_secs)
end

-- Releases every lease that expired at or before now; returns how many.
local function expire_due(now)
  local due = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', now)
  if #due == 0 then
    return 0
  end
  local expired = 0
  for _, lease_id in ipairs(due) do
    local record = redis.call('HGET', LEASES, lease_id)
    if record then
      local tokens, account = parse_lease(record)
      redis.call('HDEL', LEASES, lease_id)
      release(account, tokens)
      expired = expired + 1
    end
  end
  redis.call('ZREMRANGEBYSCORE', EXPIRY, '-inf', now)
  return expired
end
