-- health_probe: while the account is cooling down or its circuit is open,
-- the gateway sends it a minimal request now and then, and a success puts
-- it back in service. Off unless asked for, since every probe is a paid
-- call.
ALTER TABLE accounts ADD COLUMN health_probe INTEGER NOT NULL DEFAULT 0;
