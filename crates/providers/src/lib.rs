//! Provider adapters: OpenAI-compatible HTTP upstreams and the built-in mock.
