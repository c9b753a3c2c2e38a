-- Expires every lease past its TTL.
-- KEYS: 1 leases, 2 expiry. ARGV: 1 prefix, 2 now ('' = the server's
-- clock).
-- Returns how many leases expired.
return expire_due(NOW)
