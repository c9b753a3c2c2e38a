-- Routes: a model alias clients ask for, per profile, mapped to ordered
-- deployments (provider, upstream model, weight, priority) with an optional
-- selection strategy and fallback aliases. Deployments are a JSONB array
-- of objects, fallbacks a JSONB array of aliases; times are unix seconds.
CREATE TABLE control.routes (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    alias       TEXT    NOT NULL,
    profile     TEXT    NOT NULL,
    deployments JSONB   NOT NULL DEFAULT '[]',
    strategy    TEXT,
    fallbacks   JSONB   NOT NULL DEFAULT '[]',
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (profile, alias)
);
