-- health_probe: while the account is cooling down or its circuit is open,
-- the gateway sends it a minimal request now and then, and a success puts
-- it back in service. Off unless asked for, since every probe is a paid
-- call.
ALTER TABLE control.accounts ADD COLUMN health_probe BOOLEAN NOT NULL DEFAULT FALSE;
