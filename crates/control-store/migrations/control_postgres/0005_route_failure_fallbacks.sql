-- Per-route fallbacks for two failures a deployment cannot retry away (a
-- prompt longer than its context window, a content-policy refusal), as
-- JSONB arrays of aliases of the same profile, and per-route timeouts in
-- milliseconds (NULL: the router's own).
ALTER TABLE control.routes ADD COLUMN context_window_fallbacks JSONB NOT NULL DEFAULT '[]';
ALTER TABLE control.routes ADD COLUMN content_policy_fallbacks JSONB NOT NULL DEFAULT '[]';
ALTER TABLE control.routes ADD COLUMN first_byte_timeout_ms BIGINT;
ALTER TABLE control.routes ADD COLUMN deadline_ms BIGINT;
