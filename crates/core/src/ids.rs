//! Identifiers: time-ordered, unique, and safe to log.

/// A new request id (`req_` + a UUIDv7 in simple form), sortable by time.
pub fn request_id() -> String {
    prefixed("req")
}

/// A new object id with `prefix` (`key`, `acct`, `lease`).
pub fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether a client-sent request id may be reused as ours: short, printable
/// ASCII, no spaces.
pub fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
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
        assert!(is_acceptable_request_id(&a));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id(&"x".repeat(200)));
    }
}
