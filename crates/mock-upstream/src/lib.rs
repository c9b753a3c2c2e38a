//! A fake provider HTTP server speaking the OpenAI wire format, for tests, demos and benchmarks.
