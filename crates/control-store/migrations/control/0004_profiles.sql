-- Profiles (teams): the name keys, accounts and routes refer to, with a
-- description and an optional selection strategy for the profile's leases.
-- Times are unix seconds.
CREATE TABLE profiles (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    strategy    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
