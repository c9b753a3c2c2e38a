//! The edge: the public OpenAI-compatible API and the admin API.
