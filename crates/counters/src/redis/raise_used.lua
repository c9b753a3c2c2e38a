-- Raises an account's tokens used today to at least a count (the usage
-- store's total, at reconciliation); never lowers it. The day is the one
-- usage.lua reads, and a counter it writes expires like one settle wrote.
-- KEYS: 1 the account's hash.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 account id, 4 tokens,
--       5 day counter TTL (seconds), 6 the UTC day the tokens are for.
-- Returns {the count before, 1}, or {0, 0} when today is another day than
-- the one the tokens are for (nothing changed).
local today = utc_day(NOW)
if today ~= ARGV[6] then
  return {0, 0}
end
return {raise_day(KEYS[1], day_key, ARGV[3], today, ARGV[4], ARGV[5]), 1}
