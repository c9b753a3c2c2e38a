-- prices: the account's own prices, replacing the model catalog's for every
-- request it serves; JSON of micro-dollars per million tokens
-- ({"input", "output", "cached_input", "cache_write_5m", "cache_write_1h",
-- "reasoning"}, the last four optional). NULL: the catalog's.
ALTER TABLE accounts ADD COLUMN prices TEXT;
