-- Records that an account served a request: restarts the failure count of
-- a closed circuit, closes a half-open one; an open one is left alone.
-- KEYS: 1 the account's hash. ARGV: 1 now.
-- Returns 1 when this closed the circuit, else 0.
local circuit_until = redis.call('HGET', KEYS[1], 'circuit_until')
if circuit_until and tonumber(circuit_until) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HDEL', KEYS[1], 'failures', 'circuit_until', 'backoff', 'probe')
if circuit_until then
  return 1
end
return 0
