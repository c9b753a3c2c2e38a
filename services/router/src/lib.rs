//! The router service: leases an account, calls a worker, retries, settles, records usage.
