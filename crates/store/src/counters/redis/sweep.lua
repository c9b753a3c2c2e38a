-- Expires every lease past its TTL.
-- KEYS: 1 leases, 2 expiry. ARGV: 1 prefix, 2 now.
-- Returns how many leases expired.
return expire_due(ARGV[2])
