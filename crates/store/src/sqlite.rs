//! Opening SQLite databases (WAL, busy timeout) and running migrations.
