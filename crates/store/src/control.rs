//! Control data: client keys and provider accounts.
