-- Profiles (teams): the name keys, accounts and routes refer to, with a
-- description and an optional selection strategy for the profile's leases.
-- Times are unix seconds.
CREATE TABLE control.profiles (
    name        TEXT   COLLATE "C" PRIMARY KEY,
    description TEXT   NOT NULL DEFAULT '',
    strategy    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
