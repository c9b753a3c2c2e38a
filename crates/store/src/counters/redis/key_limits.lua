-- A client key's limits, for the lease script (prepended after common.lua).
-- The window of a key is kwin:<key> (lease ids scored by admission time)
-- with their tokens in ktok:<key>; a request admitted at t counts while
-- now < t + window. Both keys expire a while after their last write, so a
-- key that stops sending leaves nothing behind.
local KEY_RPM, KEY_TPM, KEY_DAILY_BUDGET = 5, 6, 7

-- Drops the requests that left the window at now.
local function slide_window(key, now, window_ms)
  local window, tokens = key_window(key), key_tokens(key)
  local start = now - window_ms
  local gone = redis.call('ZRANGEBYSCORE', window, '-inf', start)
  if #gone == 0 then
    return
  end
  redis.call('ZREMRANGEBYSCORE', window, '-inf', start)
  for _, lease_id in ipairs(gone) do
    redis.call('HDEL', tokens, lease_id)
  end
end

-- {lease id, admitted at, tokens} for every request in the window, oldest
-- first.
local function window_entries(key)
  local scored = redis.call('ZRANGE', key_window(key), 0, -1, 'WITHSCORES')
  local entries = {}
  local tokens = key_tokens(key)
  for i = 1, #scored, 2 do
    local counted = tonumber(redis.call('HGET', tokens, scored[i]) or '0')
    entries[#entries + 1] = {scored[i], tonumber(scored[i + 1]), counted}
  end
  return entries
end

local function rpm_refusal(entries, rpm, now, window_ms)
  local count = #entries
  if count < rpm then
    return nil
  end
  -- It fits once count - rpm + 1 of the oldest have left.
  local blocking = entries[count - rpm + 1]
  if blocking == nil then
    return now + window_ms
  end
  return blocking[2] + window_ms
end

local function tpm_refusal(entries, tpm, tokens, now, window_ms)
  if tokens > tpm then
    return now + window_ms
  end
  local in_window = 0
  for _, entry in ipairs(entries) do
    in_window = in_window + entry[3]
  end
  local excess = in_window + tokens - tpm
  if excess <= 0 then
    return nil
  end
  local freed = 0
  for _, entry in ipairs(entries) do
    freed = freed + entry[3]
    if freed >= excess then
      return entry[2] + window_ms
    end
  end
  return now + window_ms
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

-- The soonest instant every limit of the key could pass and the reason of
-- the latest one (a tie names the first checked), or nil when all pass;
-- then the window's entries. Limits are numbers or nil (none).
local function key_refusal(key, rpm, tpm, budget, tokens, now, today, window_ms, next_midnight, in_flight_retry_at)
  slide_window(key, now, window_ms)
  local entries = window_entries(key)
  local latest_at, latest_reason
  local function consider(at, reason)
    if at ~= nil and (latest_at == nil or at > latest_at) then
      latest_at, latest_reason = at, reason
    end
  end
  if rpm then
    consider(rpm_refusal(entries, rpm, now, window_ms), KEY_RPM)
  end
  if tpm then
    consider(tpm_refusal(entries, tpm, tokens, now, window_ms), KEY_TPM)
  end
  if budget then
    consider(budget_refusal(key, budget, tokens, today, next_midnight, in_flight_retry_at), KEY_DAILY_BUDGET)
  end
  return latest_at, latest_reason, entries
end

-- Where the window of entries stands, as four numbers for the reply:
-- requests left (-1 without an RPM limit), tokens left (-1 without a TPM
-- limit), when the oldest request leaves, and when the oldest request
-- holding tokens leaves (now when there is none).
local function window_report(entries, rpm, tpm, now, window_ms)
  local in_window = 0
  local oldest, oldest_holding
  for _, entry in ipairs(entries) do
    in_window = in_window + entry[3]
    if oldest == nil or entry[2] < oldest then
      oldest = entry[2]
    end
    if entry[3] > 0 and (oldest_holding == nil or entry[2] < oldest_holding) then
      oldest_holding = entry[2]
    end
  end
  local requests_left, tokens_left = -1, -1
  if rpm then
    requests_left = math.max(rpm - #entries, 0)
  end
  if tpm then
    tokens_left = math.max(tpm - in_window, 0)
  end
  local requests_reset, tokens_reset = now, now
  if oldest ~= nil then
    requests_reset = oldest + window_ms
  end
  if oldest_holding ~= nil then
    tokens_reset = oldest_holding + window_ms
  end
  return {requests_left, tokens_left, requests_reset, tokens_reset}
end

-- Records a granted request: in the key's window, and reserved on its day.
-- tokens and now are passed as the strings the caller sent (exact).
local function admit_key(key, lease_id, tokens, now, window_ms)
  local window, counted = key_window(key), key_tokens(key)
  redis.call('ZADD', window, now, lease_id)
  redis.call('HSET', counted, lease_id, tokens)
  redis.call('PEXPIRE', window, 2 * window_ms)
  redis.call('PEXPIRE', counted, 2 * window_ms)
  redis.call('HINCRBY', key_hash(key), 'reserved', tokens)
  redis.call('HSET', LEASE_KEYS, lease_id, key)
end
