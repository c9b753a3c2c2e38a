//! Converting between rows of the control tables (SQLite or Postgres) and
//! records: lists as JSON text, unsigned limits in signed columns,
//! out-of-range values reported as corrupt instead of wrapped.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use tollgate_core::Provider;

use super::{AccountRecord, ControlError, KeyRecord};

pub(super) fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn db_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The typed column reads a backend's rows offer; booleans are the one
/// type the backends store differently (SQLite integer, Postgres boolean).
pub(super) trait StoredRow {
    fn text(&self, field: &'static str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, field: &'static str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, field: &'static str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, field: &'static str) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, field: &'static str) -> Result<bool, sqlx::Error>;
}

macro_rules! stored_row {
    ($row:ty, |$this:ident, $field:ident| $flag:expr) => {
        impl StoredRow for $row {
            fn text(&self, field: &'static str) -> Result<String, sqlx::Error> {
                self.try_get(field)
            }

            fn opt_text(&self, field: &'static str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(field)
            }

            fn int(&self, field: &'static str) -> Result<i64, sqlx::Error> {
                self.try_get(field)
            }

            fn opt_int(&self, field: &'static str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(field)
            }

            fn flag(&self, $field: &'static str) -> Result<bool, sqlx::Error> {
                let $this = self;
                $flag
            }
        }
    };
}

stored_row!(SqliteRow, |row, field| Ok(
    row.try_get::<i64, _>(field)? != 0
));
stored_row!(PgRow, |row, field| row.try_get::<bool, _>(field));

/// Reads typed columns of one row, reporting which one is out of range.
struct Columns<'r, R> {
    row: &'r R,
    what: &'static str,
}

impl<R: StoredRow> Columns<'_, R> {
    fn text(&self, field: &'static str) -> Result<String, ControlError> {
        Ok(self.row.text(field)?)
    }

    fn opt_text(&self, field: &'static str) -> Result<Option<String>, ControlError> {
        Ok(self.row.opt_text(field)?)
    }

    fn int(&self, field: &'static str) -> Result<i64, ControlError> {
        Ok(self.row.int(field)?)
    }

    fn opt_int(&self, field: &'static str) -> Result<Option<i64>, ControlError> {
        Ok(self.row.opt_int(field)?)
    }

    fn corrupt(&self, field: &'static str) -> ControlError {
        ControlError::Corrupt {
            what: self.what,
            field,
        }
    }

    fn opt_u32(&self, field: &'static str) -> Result<Option<u32>, ControlError> {
        self.opt_int(field)?
            .map(|value| u32::try_from(value).map_err(|_| self.corrupt(field)))
            .transpose()
    }

    fn opt_u64(&self, field: &'static str) -> Result<Option<u64>, ControlError> {
        self.opt_int(field)?
            .map(|value| u64::try_from(value).map_err(|_| self.corrupt(field)))
            .transpose()
    }

    fn list(&self, field: &'static str) -> Result<Vec<String>, ControlError> {
        serde_json::from_str(&self.text(field)?).map_err(|_| self.corrupt(field))
    }

    fn flag(&self, field: &'static str) -> Result<bool, ControlError> {
        Ok(self.row.flag(field)?)
    }
}

pub(super) fn key_from_row<R: StoredRow>(row: &R) -> Result<KeyRecord, ControlError> {
    let c = Columns { row, what: "key" };
    Ok(KeyRecord {
        id: c.text("id")?,
        name: c.text("name")?,
        key_hash: c.text("key_hash")?,
        prefix: c.text("prefix")?,
        last4: c.text("last4")?,
        profile: c.text("profile")?,
        profiles: c.list("profiles")?,
        models: c.list("models")?,
        rpm: c.opt_u32("rpm")?,
        tpm: c.opt_u32("tpm")?,
        daily_token_budget: c.opt_u64("daily_token_budget")?,
        monthly_budget_micro_usd: c.opt_int("monthly_budget_micro_usd")?,
        expires_at: c.opt_int("expires_at")?,
        enabled: c.flag("enabled")?,
        created_at: c.int("created_at")?,
        updated_at: c.int("updated_at")?,
    })
}

pub(super) fn account_from_row<R: StoredRow>(row: &R) -> Result<AccountRecord, ControlError> {
    let c = Columns {
        row,
        what: "account",
    };
    let provider: Provider = c
        .text("provider")?
        .parse()
        .map_err(|_| c.corrupt("provider"))?;
    let weight = u32::try_from(c.int("weight")?).map_err(|_| c.corrupt("weight"))?;
    let priority = i32::try_from(c.int("priority")?).map_err(|_| c.corrupt("priority"))?;
    Ok(AccountRecord {
        id: c.text("id")?,
        provider,
        name: c.text("name")?,
        email: c.opt_text("email")?,
        sealed_secret: c.opt_text("secret_sealed")?,
        base_url: c.opt_text("base_url")?,
        profile: c.text("profile")?,
        models: c.list("models")?,
        daily_token_limit: c.opt_u64("daily_token_limit")?,
        rpm: c.opt_u32("rpm")?,
        tpm: c.opt_u32("tpm")?,
        priority,
        weight,
        enabled: c.flag("enabled")?,
        disabled_reason: c.opt_text("disabled_reason")?,
        created_at: c.int("created_at")?,
        updated_at: c.int("updated_at")?,
    })
}
