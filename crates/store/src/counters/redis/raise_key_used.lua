-- Raises a client key's tokens used today (kused:) to at least a count (the
-- usage store's total, at reconciliation); never lowers it. The day is the
-- one the lease script's daily budget reads, and a counter it writes
-- expires like one settle wrote.
-- KEYS: 1 the key's hash.
-- ARGV: 1 prefix, 2 key id, 3 today, 4 tokens, 5 day counter TTL (seconds).
-- Returns the count before.
return raise_day(KEYS[1], key_day_key, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
