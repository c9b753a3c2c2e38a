//! The analytics service: stores usage events and answers usage queries.
