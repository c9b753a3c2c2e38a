-- Per-route fallbacks for two failures a deployment cannot retry away (a
-- prompt longer than its context window, a content-policy refusal), as
-- JSON arrays of aliases of the same profile, and per-route timeouts in
-- milliseconds (NULL: the router's own).
ALTER TABLE routes ADD COLUMN context_window_fallbacks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE routes ADD COLUMN content_policy_fallbacks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE routes ADD COLUMN first_byte_timeout_ms INTEGER;
ALTER TABLE routes ADD COLUMN deadline_ms INTEGER;
