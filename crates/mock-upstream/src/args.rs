//! The mock upstream's settings, as command-line flags (each also read from
//! `TOLLGATE_<FLAG>`) and as a struct tests fill in directly.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tollgate_providers::mock::MockBehavior;

/// How the fake OpenAI upstream listens and behaves.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct MockUpstreamArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TOLLGATE_MOCK_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,

    /// Milliseconds to wait before each answer (before the first chunk of a stream).
    #[arg(long, env = "TOLLGATE_MOCK_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Milliseconds to wait between stream chunks.
    #[arg(long, env = "TOLLGATE_MOCK_CHUNK_DELAY_MS", default_value_t = 0)]
    pub chunk_delay_ms: u64,

    /// Content chunks per streamed reply.
    #[arg(long, env = "TOLLGATE_MOCK_CHUNKS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub chunks: u32,

    /// Report this many completion tokens instead of ceil(reply bytes / 4).
    #[arg(long, env = "TOLLGATE_MOCK_COMPLETION_TOKENS")]
    pub completion_tokens: Option<u32>,

    /// Require `Authorization: Bearer <KEY>`; others get OpenAI's 401 `invalid_api_key`.
    #[arg(long, env = "TOLLGATE_MOCK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Answer chat requests with this HTTP error status (see --fail-count).
    #[arg(long, env = "TOLLGATE_MOCK_FAIL_STATUS",
          value_parser = clap::value_parser!(u16).range(400..=599))]
    pub fail_status: Option<u16>,

    /// How many chat requests, from the first, fail with --fail-status (0 = all).
    #[arg(long, env = "TOLLGATE_MOCK_FAIL_COUNT", default_value_t = 0)]
    pub fail_count: u64,

    /// Seconds sent as `Retry-After` with a 429.
    #[arg(long, env = "TOLLGATE_MOCK_RETRY_AFTER")]
    pub retry_after: Option<u64>,

    /// End every stream abruptly after N events, without `[DONE]`.
    #[arg(long, env = "TOLLGATE_MOCK_CUT_AFTER")]
    pub cut_after: Option<u32>,

    /// How requests with one API key behave: `KEY:DIRECTIVES`, with the
    /// directives a message may carry (`sk-bad:status=503,retry_after=7`);
    /// repeat for more keys. A directive in the message wins over its key's.
    #[arg(long = "key-directives", value_name = "KEY:DIRECTIVES",
          value_parser = parse_key_directives)]
    pub key_directives: Vec<(String, String)>,

    /// Model ids listed by `GET /v1/models` (comma-separated). Chat accepts any model.
    #[arg(
        long,
        env = "TOLLGATE_MOCK_MODELS",
        value_delimiter = ',',
        default_value = "mock-echo"
    )]
    pub models: Vec<String>,
}

impl MockUpstreamArgs {
    /// The defaults, listening on a free port of 127.0.0.1 (for tests).
    pub fn any_port() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..Self::default()
        }
    }

    /// The behaviour shared with the in-process mock provider.
    pub fn behavior(&self) -> MockBehavior {
        MockBehavior {
            latency: Duration::from_millis(self.latency_ms),
            chunk_delay: Duration::from_millis(self.chunk_delay_ms),
            chunks: self.chunks.max(1),
            completion_tokens: self.completion_tokens,
            cut_after: self.cut_after,
        }
    }
}

/// The same values as the flags' defaults.
impl Default for MockUpstreamArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9100)),
            latency_ms: 0,
            chunk_delay_ms: 0,
            chunks: 3,
            completion_tokens: None,
            api_key: None,
            fail_status: None,
            fail_count: 0,
            retry_after: None,
            cut_after: None,
            key_directives: Vec::new(),
            models: vec!["mock-echo".to_owned()],
        }
    }
}

/// `KEY:DIRECTIVES`, split at the first colon.
fn parse_key_directives(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((key, directives)) if !key.is_empty() => Ok((key.to_owned(), directives.to_owned())),
        _ => Err("expected KEY:DIRECTIVES, e.g. sk-bad:status=503".to_owned()),
    }
}

impl fmt::Debug for MockUpstreamArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockUpstreamArgs")
            .field("listen", &self.listen)
            .field("latency_ms", &self.latency_ms)
            .field("chunk_delay_ms", &self.chunk_delay_ms)
            .field("chunks", &self.chunks)
            .field("completion_tokens", &self.completion_tokens)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("fail_status", &self.fail_status)
            .field("fail_count", &self.fail_count)
            .field("retry_after", &self.retry_after)
            .field("cut_after", &self.cut_after)
            .field("key_directives", &self.key_directives.len())
            .field("models", &self.models)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MockUpstreamArgs,
    }

    #[test]
    fn default_matches_the_flag_defaults() {
        let parsed = Cli::try_parse_from(["mock"]).unwrap().args;
        // The environment may set TOLLGATE_* variables; compare only when clean.
        if std::env::vars().all(|(name, _)| !name.starts_with("TOLLGATE_")) {
            assert_eq!(parsed, MockUpstreamArgs::default());
        }
    }

    #[test]
    fn flags_parse() {
        let args = Cli::try_parse_from([
            "mock",
            "--listen=127.0.0.1:0",
            "--fail-status=429",
            "--fail-count=2",
            "--retry-after=7",
            "--cut-after=1",
            "--models=a,b",
            "--api-key=sk-test",
            "--key-directives=sk-bad:status=503,retry_after=7",
        ])
        .unwrap()
        .args;
        assert_eq!(args.fail_status, Some(429));
        assert_eq!(args.fail_count, 2);
        assert_eq!(args.models, ["a", "b"]);
        assert_eq!(
            args.key_directives,
            [("sk-bad".to_owned(), "status=503,retry_after=7".to_owned())]
        );
        assert!(Cli::try_parse_from(["mock", "--key-directives=nocolon"]).is_err());
        assert!(!format!("{args:?}").contains("sk-test"));
        assert!(Cli::try_parse_from(["mock", "--fail-status=200"]).is_err());
        assert!(Cli::try_parse_from(["mock", "--chunks=0"]).is_err());
    }
}
