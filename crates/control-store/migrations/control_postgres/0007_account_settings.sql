-- settings: an account's per-provider settings (Azure's api_version and
-- deployments, an OpenAI-compatible preset, OpenRouter's attribution), as
-- the canonical JSON object the gateway checked; NULL when it has none.
-- Text rather than jsonb, so it reads back exactly as written.
ALTER TABLE control.accounts ADD COLUMN settings TEXT;
