//! Storage behind traits: control data (keys, accounts), quota counters and
//! usage events, with the embedded implementations (SQLite, in-process).
//! Later backends (Postgres, Redis) implement the same traits and pass the
//! same conformance tests.

pub mod control;
pub mod counters;
pub mod crypto;
pub mod sqlite;
#[cfg(test)]
mod test_postgres;
pub mod usage;
