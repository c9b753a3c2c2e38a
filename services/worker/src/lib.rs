//! The worker service: calls providers for the router.
