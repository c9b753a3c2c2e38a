//! The quota service: keys, accounts, leases and settlement.
