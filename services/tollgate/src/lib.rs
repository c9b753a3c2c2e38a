//! The tollgate binary: runs any service, or all of them in one process.
