-- strict_cap: the account's prompts are reserved at their worst case (one
-- token per byte), so its daily limit holds even when a prompt estimate is
-- low. On by default for Rovo Dev, whose accounts are locked once they
-- pass their limit.
ALTER TABLE accounts ADD COLUMN strict_cap INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET strict_cap = 1 WHERE provider = 'rovodev';
