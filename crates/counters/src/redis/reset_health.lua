-- An operator's reset of an account's health: ends its cooldown and/or
-- closes its circuit (failures, backoff and probe forgotten).
-- KEYS: 1 the account's hash. ARGV: 1 prefix, 2 now (unused), 3 '1' to end
-- the cooldown, 4 '1' to close the circuit.
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[1], 'cooling_until')
end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], 'failures', 'circuit_until', 'backoff', 'probe')
end
return 0
