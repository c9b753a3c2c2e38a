//! Command-line options of the load generator and the parsers they need.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use http::{HeaderName, HeaderValue, Method};

use crate::run::{Mode, Plan};

/// The body sent when `--body` is not given: a small chat completion.
pub const DEFAULT_BODY: &str =
    r#"{"model":"mock-echo","messages":[{"role":"user","content":"hello"}],"max_tokens":16}"#;

/// Sends HTTP requests to one URL, either at a fixed rate (open loop,
/// latency measured from each request's scheduled send time) or as fast as
/// the server answers (closed loop, `--max`), and prints latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "tollgate-load", version)]
pub struct Args {
    /// URL to send every request to (plain http), e.g.
    /// http://127.0.0.1:8080/v1/chat/completions.
    #[arg(long)]
    pub url: String,

    /// Open loop: requests per second across all connections.
    #[arg(long, required_unless_present = "max", conflicts_with = "max")]
    pub rate: Option<f64>,

    /// Closed loop: each connection sends its next request as soon as the
    /// previous answer has been read; measures the maximum throughput.
    #[arg(long)]
    pub max: bool,

    /// Number of keep-alive connections the load is spread over.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub connections: usize,

    /// How long to measure (after the warmup), e.g. 10s, 500ms, 1m.
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// How long to send before measuring; its answers are not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Request method.
    #[arg(long, default_value = "POST")]
    pub method: Method,

    /// Extra request header `Name: value`; repeatable.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Request body, or `@FILE` to read it from a file. Defaults to a small
    /// chat completion for model `mock-echo` (empty for GET).
    #[arg(long)]
    pub body: Option<String>,

    /// Give up on a request after this long (counted as an error).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Measure each request to the first piece of its answer's body (for a
    /// streamed answer, its first event: the time to first token) instead
    /// of to its end.
    #[arg(long)]
    pub first_byte: bool,

    /// Threads of the load generator's runtime. One leaves the other cores
    /// to the server under test.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Print the summary as one JSON line on stdout (the readable summary
    /// then goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// A name for this run, copied into the output.
    #[arg(long)]
    pub label: Option<String>,
}

impl Args {
    /// The run this command line asks for, validated.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if self.duration.is_zero() {
            bail!("--duration must be more than zero");
        }
        let mode = match self.rate {
            Some(rate) if rate.is_finite() && rate > 0.0 => Mode::Rate(rate),
            Some(rate) => bail!("--rate must be a positive number, not {rate}"),
            None => Mode::Max,
        };
        Ok(Plan {
            mode,
            connections: self.connections,
            warmup: self.warmup,
            duration: self.duration,
            timeout: self.timeout,
            first_byte: self.first_byte,
        })
    }

    /// The request body: the `--body` text, a file's content, or the default.
    pub fn body_bytes(&self) -> anyhow::Result<bytes::Bytes> {
        match self.body.as_deref() {
            Some(text) => match text.strip_prefix('@') {
                Some(path) => std::fs::read(path)
                    .map(bytes::Bytes::from)
                    .with_context(|| format!("reading body file {path}")),
                None => Ok(bytes::Bytes::from(text.to_owned())),
            },
            None if self.method == Method::GET || self.method == Method::HEAD => {
                Ok(bytes::Bytes::new())
            }
            None => Ok(bytes::Bytes::from_static(DEFAULT_BODY.as_bytes())),
        }
    }
}

/// Parses `10s`, `250ms`, `1.5m`, `100us`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s or 500ms"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use us, ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|error| format!("{text:?}: {error}"))
}

/// Parses a `Name: value` header.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("header {text:?} is not `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|error| format!("header name {:?}: {error}", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|error| format!("header value for {name}: {error}"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn durations_reject_nonsense() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("1e400s").is_err());
    }

    #[test]
    fn headers_split_on_the_first_colon() {
        let (name, value) = parse_header("Authorization: Bearer tg-abc:def").unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value, "Bearer tg-abc:def");
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn a_mode_is_required_and_rates_must_be_positive() {
        assert!(Args::try_parse_from(["tollgate-load", "--url", "http://x/"]).is_err());
        assert!(
            Args::try_parse_from([
                "tollgate-load",
                "--url",
                "http://x/",
                "--rate",
                "5",
                "--max"
            ])
            .is_err()
        );
        let args =
            Args::try_parse_from(["tollgate-load", "--url", "http://x/", "--rate=-1"]).unwrap();
        assert!(args.plan().is_err());
        let args = Args::try_parse_from([
            "tollgate-load",
            "--url",
            "http://x/",
            "--max",
            "-c",
            "32",
            "-H",
            "x-api-key: k",
        ])
        .unwrap();
        let plan = args.plan().unwrap();
        assert_eq!(plan.mode, Mode::Max);
        assert_eq!(plan.connections, 32);
        assert_eq!(args.headers.len(), 1);
    }

    #[test]
    fn default_body_depends_on_the_method() {
        let post = Args::try_parse_from(["tollgate-load", "--url", "http://x/", "--max"]).unwrap();
        assert_eq!(post.body_bytes().unwrap(), DEFAULT_BODY.as_bytes());
        let get = Args::try_parse_from([
            "tollgate-load",
            "--url",
            "http://x/",
            "--max",
            "--method",
            "GET",
        ])
        .unwrap();
        assert!(get.body_bytes().unwrap().is_empty());
    }
}
