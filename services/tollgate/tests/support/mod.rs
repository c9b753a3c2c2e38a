//! Starting real `tollgate` processes for end-to-end tests: the mock
//! upstream, `tollgate all`, or the five split-mode services, each on free
//! loopback ports, killed when the test ends (their logs are printed when
//! a test fails).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod backing;
mod ledger;
#[allow(unused_imports)]
pub use backing::*;
#[allow(unused_imports)]
pub use ledger::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "tga-end-to-end-admin-token";

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop; its output goes to a log file that is
/// printed if the test is failing.
pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn start(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name `kill -s` takes: STOP, CONT, …).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg("-s")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal} {} failed", self.name);
    }

    /// Waits up to `limit` for the process to exit on its own, while the
    /// test's other tasks (its clients' connections) keep running.
    pub async fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    /// Asks the process to stop (SIGTERM, so a launcher script stops what it
    /// started), and kills it if it is still there after three seconds.
    fn drop(&mut self) {
        if self.is_running() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, self.log());
        }
    }
}

/// Waits until the process logs a line containing `needle`, and returns
/// that line.
pub async fn wait_for_log(process: &mut Process, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = process.log().lines().find(|line| line.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            process.is_running(),
            "{} exited early:\n{}",
            process.name,
            process.log()
        );
        assert!(
            Instant::now() < deadline,
            "{} never logged {needle:?}:\n{}",
            process.name,
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `name=value` in a log line.
pub fn log_field(line: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .to_owned()
}

/// Starts `tollgate all` with `args` (which bind port 0) and returns the
/// public and admin addresses it logged.
pub async fn start_all(process: &mut Process) -> (String, String) {
    let line = wait_for_log(process, "edge ready").await;
    (log_field(&line, "public"), log_field(&line, "admin"))
}

/// Polls `url` until it answers 200.
pub async fn wait_ready(url: &str, processes: &mut [&mut Process]) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        for process in processes.iter_mut() {
            assert!(
                process.is_running(),
                "{} exited early:\n{}",
                process.name,
                process.log()
            );
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fake OpenAI upstream on a free port.
pub async fn mock_upstream(dir: &Path, extra: &[&str]) -> (Process, String) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut args = vec!["mock-upstream", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut process = Process::start(&format!("mock-upstream-{n}"), dir, &args, &[]);
    let line = wait_for_log(&mut process, "mock upstream listening").await;
    let base = format!("http://{}", log_field(&line, "addr"));
    wait_ready(&format!("{base}/v1/models"), &mut [&mut process]).await;
    (process, format!("{base}/v1"))
}

/// The gRPC ports of the services `scripts/split` started.
pub struct SplitPorts {
    pub router: u16,
    pub quota: u16,
    pub analytics: u16,
}

/// A running gateway: its public and admin base URLs.
pub struct Gateway {
    pub processes: Vec<Process>,
    pub public: String,
    pub admin: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
}

impl Gateway {
    /// `tollgate all` on free ports with a fresh data dir under `dir`.
    pub async fn all(dir: &Path) -> Gateway {
        Self::all_with(dir, &[]).await
    }

    /// `tollgate all` with extra flags.
    pub async fn all_with(dir: &Path, extra: &[&str]) -> Gateway {
        Self::all_with_env(dir, extra, &[]).await
    }

    /// `tollgate all` on shared stores: Redis counters under `prefix` and
    /// the Postgres database at `database_url`, with extra flags.
    pub async fn all_on_stores(
        dir: &Path,
        prefix: &RedisPrefix,
        database_url: &str,
        extra: &[&str],
    ) -> Gateway {
        let mut flags = vec![
            "--redis-url",
            REDIS,
            "--redis-prefix",
            &prefix.0,
            "--database-url",
            database_url,
        ];
        flags.extend_from_slice(extra);
        Self::all_with(dir, &flags).await
    }

    /// `tollgate all` with extra flags and extra environment variables
    /// (besides the admin token).
    pub async fn all_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        let data_dir = dir.join("data");
        let data_arg = data_dir.to_string_lossy().into_owned();
        let mut args = vec![
            "all",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_arg,
        ];
        args.extend_from_slice(extra);
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut vars = vec![("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)];
        vars.extend_from_slice(env);
        let mut process = Process::start(&format!("tollgate-all-{n}"), dir, &args, &vars);
        let (public, admin) = start_all(&mut process).await;
        let (public, admin) = (format!("http://{public}"), format!("http://{admin}"));
        wait_ready(&format!("{public}/readyz"), &mut [&mut process]).await;
        Gateway {
            processes: vec![process],
            public,
            admin,
            data_dir,
            http: reqwest::Client::new(),
        }
    }

    /// The five services as five processes, started by `scripts/split`.
    pub async fn split(dir: &Path) -> Gateway {
        Self::split_with_env(dir, &[]).await.0
    }

    /// `scripts/split` with extra environment variables (passed on to every
    /// service), and the gRPC ports the services listen on.
    pub async fn split_with_env(dir: &Path, env: &[(&str, &str)]) -> (Gateway, SplitPorts) {
        let data_dir = dir.join("data");
        let (listen, admin_listen) = (free_port(), free_port());
        let ports: Vec<String> = (0..4).map(|_| free_port().to_string()).collect();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/split");
        let log = dir.join("split.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new("bash");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .arg(&script)
            .env("TOLLGATE_BIN", binary())
            .env("TOLLGATE_DATA_DIR", &data_dir)
            .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SPLIT_PUBLIC_PORT", listen.to_string())
            .env("SPLIT_ADMIN_PORT", admin_listen.to_string())
            .env("SPLIT_ROUTER_PORT", &ports[0])
            .env("SPLIT_QUOTA_PORT", &ports[1])
            .env("SPLIT_WORKER_PORT", &ports[2])
            .env("SPLIT_ANALYTICS_PORT", &ports[3])
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("GEMINI_API_KEY")
            .env_remove("OPENROUTER_API_KEY")
            .env_remove("OLLAMA_BASE_URL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut process = Process {
            name: "scripts/split".into(),
            child,
            log,
        };
        let public = format!("http://127.0.0.1:{listen}");
        let admin = format!("http://127.0.0.1:{admin_listen}");
        wait_ready(&format!("{public}/readyz"), &mut [&mut process]).await;
        let peers = SplitPorts {
            router: ports[0].parse().unwrap(),
            quota: ports[1].parse().unwrap(),
            analytics: ports[3].parse().unwrap(),
        };
        let gateway = Gateway {
            processes: vec![process],
            public,
            admin,
            data_dir,
            http: reqwest::Client::new(),
        };
        (gateway, peers)
    }

    /// A gateway whose processes the caller started: `public` and `admin`
    /// are base URLs.
    pub fn from_processes(
        processes: Vec<Process>,
        public: String,
        admin: String,
        data_dir: PathBuf,
    ) -> Gateway {
        Gateway {
            processes,
            public,
            admin,
            data_dir,
            http: reqwest::Client::new(),
        }
    }

    pub async fn admin_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.admin_send(reqwest::Method::POST, path, body).await
    }

    pub async fn admin_patch(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.admin_send(reqwest::Method::PATCH, path, body).await
    }

    /// Sends `body` to an admin path and returns the answer, which must be
    /// a success.
    async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        let response = self
            .http
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {value}");
        value
    }

    /// One account's row in the default profile's stats.
    pub async fn account_stats(&self, id: &str) -> serde_json::Value {
        let stats = self.admin_get("/admin/v1/profiles/default/stats").await;
        stats["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|account| account["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {stats}"))
            .clone()
    }

    /// Creates a client key and returns its plaintext.
    pub async fn key(&self, body: serde_json::Value) -> String {
        let created = self.admin_post("/admin/v1/keys", body).await;
        created["key"].as_str().unwrap().to_owned()
    }

    /// Creates an OpenAI-compatible account pointing at `base_url`.
    pub async fn account(&self, body: serde_json::Value) -> serde_json::Value {
        self.admin_post("/admin/v1/accounts", body).await
    }

    /// POSTs a chat completion with `key`.
    pub async fn chat(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.public))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|line| line.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

/// A chat body with one user message.
pub fn user(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
