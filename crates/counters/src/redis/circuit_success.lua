-- Records that an account served a request (see circuit_success in
-- common.lua).
-- KEYS: 1 the account's hash. ARGV: 1 prefix, 2 now ('' = the server's
-- clock).
-- Returns 1 when this closed the circuit, else 0.
return circuit_success(KEYS[1], NOW)
