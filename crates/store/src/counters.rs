//! Quota counters: per-account daily tokens, reservations (leases), cooldowns.
