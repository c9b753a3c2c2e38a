//! Usage events: one row per request, written idempotently, queried by group.
