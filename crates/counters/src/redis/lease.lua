-- Picks an eligible candidate by the strategy and reserves on it.
-- KEYS: 1 leases, 2 expiry, 2+i the account hash of candidate i.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 the least tokens a
--       candidate must have room for, 4 lease id, 5 TTL (ms), 6 client key
--       id ('' = none), 7 key rpm, 8 key tpm, 9 key daily budget ('' = no
--       limit), 10 key window (ms), 11 strategy (its configuration name),
--       12 the caller's random draw (below 2^53), 13 round-robin pool, 14
--       how long an idle round-robin cursor lives (ms), 15 key monthly
--       budget (micro-dollars, '' = no limit), 16 prompt tokens, 17 the most
--       completion tokens per choice ('' when the least is reserved as it
--       is: the client's own cap), 18 choices, 19 the prompt's worst case
--       (reserved instead of its estimate on a strict account), 20 '1' for a
--       health probe (cooldowns and circuits keep no candidate out), then 5 per
--       candidate: account id, daily limit ('' = none), priority, weight,
--       strict ('1' or '0').
-- The key is checked first: a request it refuses reserves nothing.
-- Without a client cap the grant reserves the prompt plus, per choice, the
-- most completion tokens that fit the room the chosen account and the key
-- have left (as Reservation::fit in reservation.rs).
-- Returns {1, now, candidate index, used today, reserved after, tokens
-- reserved, completion cap per choice (0 for a client cap), R...}, or
-- {0, now, retry at, reason, R...} (1 cooling down, 2 daily limit, 3 in
-- flight, 4 no candidates, 5 key rpm, 6 key tpm, 7 key daily budget, 8
-- circuit open, 9 key monthly budget), or {-1} when the lease id is
-- already open. R is the key's window report: 1 and window_report's four
-- numbers (after the request on a grant), or five 0s without a key.
-- A grant counts one more lease in flight on the account, and makes the
-- lease the probe of a half-open circuit. Only lowest_latency reads the
-- accounts' latency_ewma (the others read what they always did).
local COOLING_DOWN, DAILY_LIMIT, IN_FLIGHT, NO_CANDIDATES = 1, 2, 3, 4
local CIRCUIT_OPEN = 8
local now = NOW
local tokens = tonumber(ARGV[3])
local lease_id = ARGV[4]
local today = utc_day(now)
local next_midnight = next_utc_midnight(now)
local in_flight_retry_at = math.min(now + IN_FLIGHT_RETRY_MS, next_midnight)
local key_id = ARGV[6]
local window_ms = tonumber(ARGV[10])
local strategy = ARGV[11]
local draw = tonumber(ARGV[12])
local pool = ARGV[13]
local rotation_idle_ms = ARGV[14]
local BASE = 20
local PER_CANDIDATE = 5
local prompt = tonumber(ARGV[16])
local worst_prompt = tonumber(ARGV[19])
local health_probe = ARGV[20] == '1'

expire_due(now)
if redis.call('HEXISTS', KEYS[1], lease_id) == 1 then
  return {-1}
end

local key_rpm, key_tpm = tonumber(ARGV[7]), tonumber(ARGV[8])
local key_budget = tonumber(ARGV[9])
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
  local monthly = nil
  if ARGV[15] ~= '' then
    local month, next_start = utc_month(now)
    monthly = {budget = tonumber(ARGV[15]), month = month, next_start = next_start}
  end
  local at, reason = key_refusal(key_id, key_rpm, key_tpm, key_budget,
    tokens, now, today, window_ms, next_midnight, in_flight_retry_at, monthly)
  if at ~= nil then
    return reply({0, now, at, reason})
  end
end
local key_room = math.huge
if key_checked then
  key_room = key_room_left(key_id, key_tpm, key_budget, today)
end

-- Where one candidate stands: 'eligible' with tokens left, 'blocked' with
-- the soonest it could serve and why, or 'never' (larger than its limit).
local function standing(limit, used, reserved, cooling_until, tokens)
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

-- The soonest a circuit lets the account serve when it keeps it out now:
-- open (until its end), or half-open with its probe lease still open
-- (shortly); nil when it does not block.
local function circuit_block(circuit_until, probe)
  if not circuit_until then
    return nil
  end
  local until_ms = tonumber(circuit_until)
  if until_ms > now then
    return until_ms
  end
  if probe and is_open(redis.call('HGET', LEASES, probe)) then
    return in_flight_retry_at
  end
  return nil
end

-- The index in eligible of the first entry no other beats.
local function first_best(eligible, beats)
  local best = 1
  for j = 2, #eligible do
    if beats(eligible[j], eligible[best]) then
      best = j
    end
  end
  return best
end

-- Which eligible entry the strategy picks (eligible is not empty).
local function pick(eligible)
  if strategy == 'priority' then
    return first_best(eligible, function(a, b)
      if a.priority ~= b.priority then
        return a.priority > b.priority
      end
      return a.remaining > b.remaining
    end)
  elseif strategy == 'least_inflight' then
    return first_best(eligible, function(a, b)
      if a.inflight ~= b.inflight then
        return a.inflight < b.inflight
      end
      return a.remaining > b.remaining
    end)
  elseif strategy == 'lowest_latency' then
    -- Not measured yet comes first, so every account gets measured.
    return first_best(eligible, function(a, b)
      if a.latency ~= b.latency then
        if a.latency == nil or b.latency == nil then
          return a.latency == nil
        end
        return a.latency < b.latency
      end
      return a.remaining > b.remaining
    end)
  elseif strategy == 'weighted' then
    local total, all_zero = 0, true
    for _, entry in ipairs(eligible) do
      total = total + entry.weight
      if entry.weight > 0 then
        all_zero = false
      end
    end
    if all_zero then
      total = #eligible
    end
    -- fmod is exact on integers below 2^53.
    local target = math.fmod(draw, total)
    for j, entry in ipairs(eligible) do
      local share = entry.weight
      if all_zero then
        share = 1
      end
      if target < share then
        return j
      end
      target = target - share
    end
    return #eligible
  elseif strategy == 'round_robin' then
    local cursor = PREFIX .. 'rr:' .. pool
    local turn = redis.call('INCR', cursor) - 1
    redis.call('PEXPIRE', cursor, rotation_idle_ms)
    return math.fmod(turn, #eligible) + 1
  end
  return first_best(eligible, function(a, b)
    if a.remaining ~= b.remaining then
      return a.remaining > b.remaining
    end
    if a.priority ~= b.priority then
      return a.priority > b.priority
    end
    return a.weight > b.weight
  end)
end

local count = (#ARGV - BASE) / PER_CANDIDATE
local eligible = {}
local soonest_at, soonest_reason
for i = 1, count do
  local arg = BASE + (i - 1) * PER_CANDIDATE
  local account = ARGV[arg + 1]
  local limit = tonumber(ARGV[arg + 2])
  local strict = ARGV[arg + 5] == '1'
  -- A strict account has room for the worst-case prompt or none.
  local need = tokens
  if strict then
    need = tokens - prompt + worst_prompt
  end
  local state
  if strategy == 'lowest_latency' then
    state = redis.call('HMGET', KEYS[2 + i], 'day', 'reserved', 'cooling_until',
      'inflight', 'circuit_until', 'probe', 'latency_ewma')
  else
    state = redis.call('HMGET', KEYS[2 + i], 'day', 'reserved', 'cooling_until',
      'inflight', 'circuit_until', 'probe')
  end
  local used = tonumber(redis.call('GET', day_key(counting_day(state[1], today), account)) or '0')
  local cooling_until, circuit_at = tonumber(state[3] or '0'), nil
  if health_probe then
    cooling_until = 0
  else
    circuit_at = circuit_block(state[5], state[6])
  end
  local kind, at, reason = standing(limit, used, tonumber(state[2] or '0'), cooling_until, need)
  if circuit_at ~= nil and kind ~= 'never' and (kind == 'eligible' or circuit_at > at) then
    kind, at, reason = 'blocked', circuit_at, CIRCUIT_OPEN
  end
  if kind == 'eligible' then
    eligible[#eligible + 1] = {
      index = i,
      remaining = at,
      priority = tonumber(ARGV[arg + 3]),
      weight = tonumber(ARGV[arg + 4]),
      inflight = tonumber(state[4] or '0'),
      -- nil when not measured yet (or not read: another strategy).
      latency = tonumber(state[7] or ''),
      used = used,
      half_open = state[5] ~= false,
      strict = strict,
      need = need,
    }
  elseif kind == 'blocked' then
    if soonest_at == nil or at < soonest_at then
      soonest_at, soonest_reason = at, reason
    end
  end
end

if #eligible == 0 then
  if soonest_at ~= nil then
    return reply({0, now, soonest_at, soonest_reason})
  end
  if count == 0 then
    return reply({0, now, now, NO_CANDIDATES})
  end
  return reply({0, now, next_midnight, DAILY_LIMIT})
end

local chosen = eligible[pick(eligible)]
local best = chosen.index
local account = ARGV[BASE + (best - 1) * PER_CANDIDATE + 1]
-- What the grant reserves: the least as it is for a client's cap, else
-- the prompt plus the most completion per choice the account's room
-- allows (after its prompt, the worst case on a strict account) and the
-- key's (after the estimate).
local reserve_text, cap = string.format('%d', chosen.need), 0
if not chosen.strict then
  reserve_text = ARGV[3]
end
if ARGV[17] ~= '' then
  local most, choices = tonumber(ARGV[17]), tonumber(ARGV[18])
  local own_prompt = prompt
  if chosen.strict then
    own_prompt = worst_prompt
  end
  cap = most
  if chosen.remaining ~= math.huge then
    cap = math.min(cap, math.floor((chosen.remaining - own_prompt) / choices))
  end
  if key_room ~= math.huge then
    cap = math.min(cap, math.floor((key_room - prompt) / choices))
  end
  reserve_text = string.format('%d', own_prompt + cap * choices)
end
local reserved = redis.call('HINCRBY', KEYS[2 + best], 'reserved', reserve_text)
redis.call('HINCRBY', KEYS[2 + best], 'inflight', 1)
if chosen.half_open then
  redis.call('HSET', KEYS[2 + best], 'probe', lease_id)
end
redis.call('HSET', KEYS[1], lease_id, reserve_text .. ':' .. account)
redis.call('ZADD', KEYS[2], ms_text(now + tonumber(ARGV[5])), lease_id)
if key_id ~= '' then
  admit_key(key_id, lease_id, reserve_text, ms_text(now), window_ms)
end
return reply({1, now, best, chosen.used, reserved, tonumber(reserve_text), cap})
