-- A client key's limits, for the lease script (prepended after common.lua).
-- The window of a key is kwin:<key> (lease ids scored by admission time)
-- with their tokens in ktok:<key>, their sum in window_tokens of key:<key>
-- and the ones holding tokens in khold:<key>; a request admitted at t
-- counts while now < t + window. A lease reads only the requests leaving
-- the window and a few sorted-set positions, never the whole window. The
-- window keys expire a while after their last write, so a key that stops
-- sending leaves nothing behind but that one field (dropped by its next
-- lease, which finds the window empty).
local KEY_RPM, KEY_TPM, KEY_DAILY_BUDGET, KEY_MONTHLY_BUDGET = 5, 6, 7, 9

-- Ids handed to one HMGET or HDEL at most (Lua's unpack has a stack limit).
local CHUNK = 512

-- Calls action with the items of list, CHUNK at a time, unpacked.
local function each_chunk(list, action)
  for first = 1, #list, CHUNK do
    action(unpack(list, first, math.min(first + CHUNK - 1, #list)))
  end
end

-- Drops the requests that left the window at now (reading only those) and
-- takes their tokens off window_tokens, which an empty window (left or
-- expired) drops.
local function slide_window(key, now, window_ms)
  local window, counted = key_window(key), key_tokens(key)
  local start = now - window_ms
  local gone = redis.call('ZRANGEBYSCORE', window, '-inf', start)
  local freed = 0
  if #gone > 0 then
    each_chunk(gone, function(...)
      for _, amount in ipairs(redis.call('HMGET', counted, ...)) do
        freed = freed + tonumber(amount or '0')
      end
      redis.call('HDEL', counted, ...)
    end)
    redis.call('ZREMRANGEBYSCORE', window, '-inf', start)
    redis.call('ZREMRANGEBYSCORE', key_held(key), '-inf', start)
  end
  if redis.call('ZCARD', window) == 0 then
    redis.call('HDEL', key_hash(key), WINDOW_TOKENS)
  elseif freed ~= 0 then
    redis.call('HINCRBY', key_hash(key), WINDOW_TOKENS, 0 - freed)
  end
end

-- How many requests the key's window holds and their tokens.
local function window_totals(key)
  local count = redis.call('ZCARD', key_window(key))
  if count == 0 then
    return 0, 0
  end
  return count, tonumber(redis.call('HGET', key_hash(key), WINDOW_TOKENS) or '0')
end

-- The admission time of the (index + 1)th oldest member of a window sorted
-- set, or nil.
local function admitted_at(set, index)
  local scored = redis.call('ZRANGE', set, index, index, 'WITHSCORES')
  if scored[2] == nil then
    return nil
  end
  return tonumber(scored[2])
end

local function rpm_refusal(key, count, rpm, now, window_ms)
  if count < rpm then
    return nil
  end
  -- It fits once count - rpm + 1 of the oldest have left.
  local blocking = admitted_at(key_window(key), count - rpm)
  if blocking == nil then
    return now + window_ms
  end
  return blocking + window_ms
end

-- Walks the requests holding tokens from the oldest (requests without
-- tokens free nothing), in growing batches, until excess tokens are freed:
-- one or two requests when the window sits just under the limit.
local function tpm_refusal(key, in_window, tpm, tokens, now, window_ms)
  if tokens > tpm then
    return now + window_ms
  end
  local excess = in_window + tokens - tpm
  if excess <= 0 then
    return nil
  end
  local held, counted = key_held(key), key_tokens(key)
  local freed, first, batch = 0, 0, 8
  while true do
    local scored = redis.call('ZRANGE', held, first, first + batch - 1, 'WITHSCORES')
    if #scored == 0 then
      return now + window_ms
    end
    local ids = {}
    for i = 1, #scored, 2 do
      ids[#ids + 1] = scored[i]
    end
    for i, amount in ipairs(redis.call('HMGET', counted, unpack(ids))) do
      freed = freed + tonumber(amount or '0')
      if freed >= excess then
        return tonumber(scored[2 * i]) + window_ms
      end
    end
    first = first + batch
    batch = math.min(batch * 2, CHUNK)
  end
end

local function budget_refusal(key, budget, tokens, today, next_midnight, in_flight_retry_at)
  local state = redis.call('HMGET', key_hash(key), 'day', 'reserved')
  local used = tonumber(redis.call('GET', key_day_key(counting_day(state[1], today), key)) or '0')
  local reserved = tonumber(state[2] or '0')
  if used + reserved + tokens <= budget then
    return nil
  end
  if used + tokens > budget then
    return next_midnight
  end
  return in_flight_retry_at
end

-- The key's monthly budget refuses once the spend settled in its month
-- reached it (the cost of a request is only known once settled): until
-- the next month starts. monthly is {budget, month (YYYYMM), next_start}.
local function monthly_refusal(key, monthly)
  local charged = redis.call('HGET', key_hash(key), 'month')
  local month = counting_day(charged, monthly.month)
  local spent = tonumber(redis.call('GET', key_spend_key(month, key)) or '0')
  if spent >= monthly.budget then
    return monthly.next_start
  end
  return nil
end

-- The soonest instant every limit of the key could pass and the reason of
-- the latest one (a tie names the first checked), or nil when all pass.
-- Limits are numbers or nil (none); monthly is nil without a monthly
-- budget.
local function key_refusal(key, rpm, tpm, budget, tokens, now, today, window_ms, next_midnight, in_flight_retry_at, monthly)
  slide_window(key, now, window_ms)
  local count, in_window = window_totals(key)
  local latest_at, latest_reason
  local function consider(at, reason)
    if at ~= nil and (latest_at == nil or at > latest_at) then
      latest_at, latest_reason = at, reason
    end
  end
  if rpm then
    consider(rpm_refusal(key, count, rpm, now, window_ms), KEY_RPM)
  end
  if tpm then
    consider(tpm_refusal(key, in_window, tpm, tokens, now, window_ms), KEY_TPM)
  end
  if budget then
    consider(budget_refusal(key, budget, tokens, today, next_midnight, in_flight_retry_at), KEY_DAILY_BUDGET)
  end
  if monthly then
    consider(monthly_refusal(key, monthly), KEY_MONTHLY_BUDGET)
  end
  return latest_at, latest_reason
end

-- The tokens the key's TPM and daily budget leave room for (the window
-- already slid); math.huge without either limit.
local function key_room_left(key, tpm, budget, today)
  local room = math.huge
  if tpm then
    local _, in_window = window_totals(key)
    room = math.min(room, tpm - in_window)
  end
  if budget then
    local state = redis.call('HMGET', key_hash(key), 'day', 'reserved')
    local used = tonumber(redis.call('GET', key_day_key(counting_day(state[1], today), key)) or '0')
    room = math.min(room, budget - used - tonumber(state[2] or '0'))
  end
  return room
end

-- Where the key's window stands, as four numbers for the reply: requests
-- left (-1 without an RPM limit), tokens left (-1 without a TPM limit),
-- when the oldest request leaves, and when the oldest request holding
-- tokens leaves (now when there is none).
local function window_report(key, rpm, tpm, now, window_ms)
  local count, in_window = window_totals(key)
  local requests_left, tokens_left = -1, -1
  if rpm then
    requests_left = math.max(rpm - count, 0)
  end
  if tpm then
    tokens_left = math.max(tpm - in_window, 0)
  end
  local requests_reset, tokens_reset = now, now
  local oldest = admitted_at(key_window(key), 0)
  if oldest ~= nil then
    requests_reset = oldest + window_ms
  end
  local oldest_holding = admitted_at(key_held(key), 0)
  if oldest_holding ~= nil then
    tokens_reset = oldest_holding + window_ms
  end
  return {requests_left, tokens_left, requests_reset, tokens_reset}
end

-- Records a granted request: in the key's window, and reserved on its day.
-- tokens and now are passed as the strings the caller sent (exact).
local function admit_key(key, lease_id, tokens, now, window_ms)
  local window = key_window(key)
  redis.call('ZADD', window, now, lease_id)
  set_window_tokens(key, lease_id, now, tokens)
  redis.call('PEXPIRE', window, 2 * window_ms)
  redis.call('PEXPIRE', key_tokens(key), 2 * window_ms)
  redis.call('PEXPIRE', key_held(key), 2 * window_ms)
  redis.call('HINCRBY', key_hash(key), 'reserved', tokens)
  redis.call('HSET', LEASE_KEYS, lease_id, key)
end
