//! Identifiers: time-ordered, unique, and safe to log.

/// A new request id (`req_` + a UUIDv7 in simple form), sortable by time.
pub fn request_id() -> String {
    prefixed("req")
}

/// A new object id with `prefix` (`key`, `acct`, `lease`).
pub fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = request_id();
        let b = request_id();
        assert!(a.starts_with("req_"));
        assert_ne!(a, b);
    }
}
