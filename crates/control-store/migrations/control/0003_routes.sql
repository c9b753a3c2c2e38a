-- Routes: a model alias clients ask for, per profile, mapped to ordered
-- deployments (provider, upstream model, weight, priority) with an optional
-- selection strategy and fallback aliases. Deployments are a JSON array of
-- objects, fallbacks a JSON array of aliases; times are unix seconds.
CREATE TABLE routes (
    id          TEXT PRIMARY KEY NOT NULL,
    alias       TEXT NOT NULL,
    profile     TEXT NOT NULL,
    deployments TEXT NOT NULL DEFAULT '[]',
    strategy    TEXT,
    fallbacks   TEXT NOT NULL DEFAULT '[]',
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (profile, alias)
);
