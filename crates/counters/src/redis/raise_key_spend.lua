-- Raises a client key's spend this UTC month (kspend:) to at least an
-- amount (the usage store's total cost, at reconciliation); never lowers
-- it. The month is the one the lease script's monthly budget reads.
-- KEYS: 1 the key's hash.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 key id, 4
--       micro-dollars, 5 month counter TTL (seconds), 6 the month (YYYYMM)
--       the amount is for.
-- Returns {the amount before, 1}, or {0, 0} when this month is another
-- than the one the amount is for (nothing changed).
local month = utc_month(NOW)
if month ~= ARGV[6] then
  return {0, 0}
end
return {raise_day(KEYS[1], key_spend_key, ARGV[3], month, ARGV[4], ARGV[5], 'month'), 1}
