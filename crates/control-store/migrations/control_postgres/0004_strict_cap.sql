-- strict_cap: the account's prompts are reserved at their worst case (one
-- token per byte), so its daily limit holds even when a prompt estimate is
-- low. On by default for Rovo Dev, whose accounts are locked once they
-- pass their limit.
ALTER TABLE control.accounts ADD COLUMN strict_cap BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE control.accounts SET strict_cap = TRUE WHERE provider = 'rovodev';
