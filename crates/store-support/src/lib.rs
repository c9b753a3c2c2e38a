//! What the storage crates (control store, usage store) share: every
//! embedded store opens its SQLite file the same way ([`sqlite`]), and with
//! the `test-postgres` feature their tests each get a fresh Postgres
//! database ([`test_postgres`]).

pub mod sqlite;
#[cfg(feature = "test-postgres")]
pub mod test_postgres;
