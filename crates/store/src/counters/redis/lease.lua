-- Picks the candidate with the most tokens left today and reserves on it.
-- KEYS: 1 leases, 2 expiry, 2+i the account hash of candidate i.
-- ARGV: 1 prefix, 2 lease id, 3 tokens, 4 now, 5 today, 6 expires at,
--       7 next midnight, 8 in-flight retry at, 9 client key id ('' = none),
--       10 key rpm, 11 key tpm, 12 key daily budget ('' = no limit),
--       13 key window (ms), then 4 per candidate:
--       account id, daily limit ('' = none), priority, weight.
-- The key is checked first: a request it refuses reserves nothing.
-- Returns {1, candidate index, used today, reserved after, R...}, or
-- {0, retry at, reason, R...} (1 cooling down, 2 daily limit, 3 in flight,
-- 4 no candidates, 5 key rpm, 6 key tpm, 7 key daily budget), or {-1}
-- when the lease id is already open. R is the key's window report: 1 and
-- window_report's four numbers (after the request on a grant), or five 0s
-- without a key.
local COOLING_DOWN, DAILY_LIMIT, IN_FLIGHT, NO_CANDIDATES = 1, 2, 3, 4
local lease_id = ARGV[2]
local tokens = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local today = ARGV[5]
local next_midnight = tonumber(ARGV[7])
local in_flight_retry_at = tonumber(ARGV[8])
local key_id = ARGV[9]
local window_ms = tonumber(ARGV[13])
local BASE = 13

expire_due(ARGV[4])
if redis.call('HEXISTS', KEYS[1], lease_id) == 1 then
  return {-1}
end

local key_rpm, key_tpm = tonumber(ARGV[10]), tonumber(ARGV[11])
local key_checked = false
-- The reply: head followed by the key's window report.
local function reply(head)
  local report = {0, 0, 0, 0, 0}
  if key_checked then
    report = window_report(key_id, key_rpm, key_tpm, now, window_ms)
    table.insert(report, 1, 1)
  end
  for _, value in ipairs(report) do
    head[#head + 1] = value
  end
  return head
end

if key_id ~= '' then
  key_checked = true
  local at, reason = key_refusal(key_id, key_rpm, key_tpm, tonumber(ARGV[12]),
    tokens, now, today, window_ms, next_midnight, in_flight_retry_at)
  if at ~= nil then
    return reply({0, at, reason})
  end
end

-- Where one candidate stands: 'eligible' with tokens left, 'blocked' with
-- the soonest it could serve and why, or 'never' (larger than its limit).
local function standing(limit, used, reserved, cooling_until)
  local cooling = cooling_until > now
  if limit == nil then
    if cooling then
      return 'blocked', cooling_until, COOLING_DOWN
    end
    return 'eligible', math.huge
  end
  if tokens > limit then
    return 'never'
  end
  local committed = used + reserved
  if not cooling and committed + tokens <= limit then
    return 'eligible', limit - committed
  end
  local day_spent = used + tokens > limit
  if cooling then
    if day_spent and cooling_until < next_midnight then
      return 'blocked', next_midnight, DAILY_LIMIT
    end
    return 'blocked', cooling_until, COOLING_DOWN
  end
  if day_spent then
    return 'blocked', next_midnight, DAILY_LIMIT
  end
  return 'blocked', in_flight_retry_at, IN_FLIGHT
end

local function ranks_higher(a, b)
  if a[1] ~= b[1] then
    return a[1] > b[1]
  end
  if a[2] ~= b[2] then
    return a[2] > b[2]
  end
  return a[3] > b[3]
end

local count = (#ARGV - BASE) / 4
local best, best_rank, best_used
local soonest_at, soonest_reason
for i = 1, count do
  local arg = BASE + (i - 1) * 4
  local account = ARGV[arg + 1]
  local limit = tonumber(ARGV[arg + 2])
  local state = redis.call('HMGET', KEYS[2 + i], 'day', 'reserved', 'cooling_until')
  local used = tonumber(redis.call('GET', day_key(counting_day(state[1], today), account)) or '0')
  local kind, at, reason = standing(limit, used, tonumber(state[2] or '0'), tonumber(state[3] or '0'))
  if kind == 'eligible' then
    local rank = {at, tonumber(ARGV[arg + 3]), tonumber(ARGV[arg + 4])}
    if best == nil or ranks_higher(rank, best_rank) then
      best, best_rank, best_used = i, rank, used
    end
  elseif kind == 'blocked' then
    if soonest_at == nil or at < soonest_at then
      soonest_at, soonest_reason = at, reason
    end
  end
end

if best == nil then
  if soonest_at ~= nil then
    return reply({0, soonest_at, soonest_reason})
  end
  if count == 0 then
    return reply({0, now, NO_CANDIDATES})
  end
  return reply({0, next_midnight, DAILY_LIMIT})
end

local account = ARGV[BASE + (best - 1) * 4 + 1]
local reserved = redis.call('HINCRBY', KEYS[2 + best], 'reserved', tokens)
redis.call('HSET', KEYS[1], lease_id, ARGV[3] .. ':' .. account)
redis.call('ZADD', KEYS[2], ARGV[6], lease_id)
if key_id ~= '' then
  admit_key(key_id, lease_id, ARGV[3], ARGV[4], window_ms)
end
return reply({1, best, best_used, reserved})
