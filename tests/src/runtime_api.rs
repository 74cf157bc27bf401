//! A stand-in for the Lambda Runtime API (the HTTP interface a deployed `bootstrap` talks
//! to), so tests and the benchmarks drive the real binaries with real bytes in and out. One
//! server ([`LambdaProcess`]) serves every caller: the tests that feed a list of events, the
//! reliability suite that SIGKILLs a binary mid-invocation, the bad-input suite that sends
//! bodies that are not JSON, and `arc-bench`, which times cold init and each invocation and
//! reads the process's peak RSS and CPU time from `/proc` before it ends.

use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(Value),
    Err { error_type: String, error_message: String },
}

impl Outcome {
    pub fn ok(self) -> Value {
        match self {
            Outcome::Ok(v) => v,
            Outcome::Err { error_type, error_message } => panic!("expected success, got {error_type}: {error_message}"),
        }
    }
    pub fn err_type(&self) -> Option<&str> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Err { error_type, .. } => Some(error_type),
        }
    }
}

/// How a binary is started.
#[derive(Debug, Clone, Default)]
pub struct Spawn {
    /// Extra environment (after the Lambda variables, so it may override them).
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub remove: Vec<String>,
    /// Where stdout and stderr go (`None`: discarded).
    pub log: Option<PathBuf>,
}

/// One invocation as the Runtime API saw it.
#[derive(Debug, Clone)]
pub struct Served {
    pub outcome: Outcome,
    /// From handing out the event (`/next` answered) to the function's answer.
    pub latency: Duration,
}

/// What `/proc/<pid>` said about the process just before it was stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcStats {
    /// Peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User + system CPU time.
    pub cpu: Duration,
}

#[derive(Default)]
struct Shared {
    queue: VecDeque<Vec<u8>>,
    handed: VecDeque<Instant>,
    served: Vec<Served>,
    first_next: Option<Instant>,
}

/// A Lambda binary talking to a local Runtime API on 127.0.0.1. Events are handed out in the
/// order they are pushed; a `/next` with nothing queued is held open (as Lambda does between
/// invocations). Dropping it SIGKILLs the process.
pub struct LambdaProcess {
    binary: PathBuf,
    child: Child,
    spawned_at: Instant,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

const HEADERS: [(&str, &str); 3] = [
    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:local"),
    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
    ("Content-Type", "application/json"),
];

impl LambdaProcess {
    /// Starts `binary` with the environment a Lambda sandbox sets, plus `spawn`'s.
    pub fn spawn(binary: &Path, spawn: Spawn) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind runtime api");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("port");
        let mut cmd = Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", binary.file_name().and_then(|n| n.to_str()).unwrap_or("fn"))
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
            .stdin(Stdio::null());
        for k in &spawn.remove {
            cmd.env_remove(k);
        }
        cmd.envs(spawn.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match &spawn.log {
            Some(path) => {
                let file = std::fs::File::create(path).expect("log file");
                let err = file.try_clone().expect("log file");
                cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let spawned_at = Instant::now();
        let child = cmd.spawn().expect("spawn lambda binary");
        let (sh, st) = (shared.clone(), stop.clone());
        let handle = std::thread::spawn(move || serve(&server, &sh, &st));
        Self { binary: binary.to_owned(), child, spawned_at, shared, stop, server: Some(handle) }
    }

    /// Queues one event (any bytes: the body need not be JSON).
    pub fn push(&self, body: Vec<u8>) {
        if let Ok(mut g) = self.shared.lock() {
            g.queue.push_back(body);
        }
    }

    /// Queues a JSON event.
    pub fn push_json(&self, event: &Value) {
        self.push(event.to_string().into_bytes());
    }

    /// The invocations answered so far.
    pub fn served(&self) -> Vec<Served> {
        self.shared.lock().map(|g| g.served.clone()).unwrap_or_default()
    }

    /// From spawn to the first `/next` (the runtime's cold init), once it came.
    pub fn cold_init(&self) -> Option<Duration> {
        self.shared.lock().ok().and_then(|g| g.first_next).map(|t| t.duration_since(self.spawned_at))
    }

    /// Waits up to `limit` until `n` invocations are answered; `None` when they are not (the
    /// process exited or the time ran out).
    pub fn wait_for(&mut self, n: usize, limit: Duration) -> Option<Vec<Served>> {
        let deadline = Instant::now() + limit;
        loop {
            let served = self.served();
            if served.len() >= n {
                return Some(served);
            }
            if Instant::now() >= deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Like [`wait_for`](Self::wait_for), panicking with the binary's name when the answers do
    /// not all come.
    pub fn expect_answers(&mut self, n: usize, limit: Duration) -> Vec<Served> {
        match self.wait_for(n, limit) {
            Some(s) => s,
            None => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{} answered {} of {n} events (exit status: {status:?})",
                    self.binary.display(),
                    self.served().len()
                )
            }
        }
    }

    /// Peak RSS and CPU time so far, from `/proc/<pid>` (zero when unreadable).
    pub fn proc_stats(&self) -> ProcStats {
        proc_stats(self.child.id())
    }

    /// SIGKILL (std's `Child::kill` on Unix), then reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.kill();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

fn serve(server: &tiny_http::Server, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let mut parked: Vec<tiny_http::Request> = Vec::new();
    let mut next_id = 0usize;
    while !stop.load(Ordering::SeqCst) {
        // A parked `/next` gets the next queued event as soon as there is one.
        if !parked.is_empty() {
            let body = shared.lock().ok().and_then(|mut g| g.queue.pop_front());
            if let Some(body) = body {
                hand_out(parked.remove(0), body, &mut next_id, shared);
                continue;
            }
        }
        let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(1)) else { continue };
        let url = req.url().to_owned();
        if url.ends_with("/invocation/next") {
            let body = shared.lock().ok().and_then(|mut g| {
                g.first_next.get_or_insert_with(Instant::now);
                g.queue.pop_front()
            });
            match body {
                Some(body) => hand_out(req, body, &mut next_id, shared),
                None => parked.push(req),
            }
        } else {
            let answered = Instant::now();
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            let outcome = if url.ends_with("/response") {
                Outcome::Ok(value)
            } else {
                Outcome::Err {
                    error_type: value.get("errorType").and_then(Value::as_str).unwrap_or("").to_owned(),
                    error_message: value.get("errorMessage").and_then(Value::as_str).unwrap_or("").to_owned(),
                }
            };
            if let Ok(mut g) = shared.lock() {
                let handed = g.handed.pop_front().unwrap_or(answered);
                g.served.push(Served { outcome, latency: answered.duration_since(handed) });
            }
            let _ = req.respond(tiny_http::Response::from_string("{\"status\":\"OK\"}").with_status_code(202));
        }
    }
}

fn hand_out(req: tiny_http::Request, body: Vec<u8>, next_id: &mut usize, shared: &Mutex<Shared>) {
    let id = format!("req-{next_id}");
    *next_id += 1;
    let deadline_ms = (now_ms() + 300_000).to_string();
    let mut resp = tiny_http::Response::from_data(body);
    for (k, v) in [("Lambda-Runtime-Aws-Request-Id", id.as_str()), ("Lambda-Runtime-Deadline-Ms", deadline_ms.as_str())]
        .into_iter()
        .chain(HEADERS)
    {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    if let Ok(mut g) = shared.lock() {
        g.handed.push_back(Instant::now());
    }
    let _ = req.respond(resp);
}

/// Peak RSS (`VmHWM` of `/proc/<pid>/status`) and user + system CPU (`utime`, `stime` of
/// `/proc/<pid>/stat`) of a live process; zero for what cannot be read.
pub fn proc_stats(pid: u32) -> ProcStats {
    let peak_rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start after the last ')'.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line; 12 and 13 after the name.
            let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
        })
        .unwrap_or_default();
    ProcStats { peak_rss_kib, cpu }
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// Starts `binary` against a local Runtime API, feeds it `events` one after another (one
/// process: cold start once) and returns each outcome. Extra environment in `env`.
pub fn invoke_binary(binary: &Path, env: &[(String, String)], events: &[Value]) -> Vec<Outcome> {
    invoke(binary, Spawn { env: env.to_vec(), ..Spawn::default() }, events_as_bytes(events)).0
}

/// [`invoke_binary`], also returning everything the process logged (stdout and stderr).
pub fn invoke_binary_with_logs(binary: &Path, env: &[(String, String)], events: &[Value]) -> (Vec<Outcome>, String) {
    invoke_raw(binary, env, events_as_bytes(events))
}

/// Drives `binary` with raw bodies (bytes that need not be JSON, as a client could send), one
/// process for all of them; returns each outcome and everything it logged.
pub fn invoke_raw(binary: &Path, env: &[(String, String)], bodies: Vec<Vec<u8>>) -> (Vec<Outcome>, String) {
    let path = std::env::temp_dir().join(format!("arc-lambda-log-{}.txt", uuid::Uuid::new_v4().simple()));
    let (outcomes, _) =
        invoke(binary, Spawn { env: env.to_vec(), log: Some(path.clone()), ..Spawn::default() }, bodies);
    let logs = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    (outcomes, logs)
}

fn events_as_bytes(events: &[Value]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.to_string().into_bytes()).collect()
}

fn invoke(binary: &Path, spawn: Spawn, bodies: Vec<Vec<u8>>) -> (Vec<Outcome>, ProcStats) {
    let n = bodies.len();
    let mut p = LambdaProcess::spawn(binary, spawn);
    for b in bodies {
        p.push(b);
    }
    let served = p.expect_answers(n, Duration::from_secs(300));
    let stats = p.proc_stats();
    (served.into_iter().map(|s| s.outcome).collect(), stats)
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}
