//! The local Redis and Postgres as tests use them: a key prefix of the
//! test's own, and a database of the test's own, both removed when the
//! test ends.

use sqlx::Connection;

pub const REDIS: &str = "redis://127.0.0.1:6379";
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh Redis key prefix; every key under it is deleted on drop.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new(kind: &str) -> RedisPrefix {
        RedisPrefix(format!("tgtest:{kind}:{}:", uuid::Uuid::now_v7().simple()))
    }

    /// The usage stream under this prefix.
    pub fn stream(&self) -> String {
        format!("{}usage", self.0)
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(REDIS) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A fresh Postgres database, dropped on drop.
pub struct Database {
    pub name: String,
}

impl Database {
    pub async fn create(kind: &str) -> Database {
        let name = format!("tollgate_{kind}_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
            .await
            .expect("Postgres must be running on 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Database { name }
    }

    pub fn url(&self) -> String {
        format!("{POSTGRES}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // On a runtime of its own: the test's runtime is shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) =
                    sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
