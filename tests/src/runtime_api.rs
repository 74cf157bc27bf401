//! A stand-in for the Lambda Runtime API (the HTTP interface a deployed `bootstrap` talks
//! to), so tests drive the real binaries with real JSON in and out.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// Starts `binary` against a local Runtime API, feeds it `events` one after another (one
/// process: cold start once) and returns each outcome. Extra environment in `env`.
pub fn invoke_binary(binary: &Path, env: &[(String, String)], events: &[Value]) -> Vec<Outcome> {
    invoke(binary, env, events, None)
}

/// [`invoke_binary`], also returning everything the process logged (stdout and stderr).
pub fn invoke_binary_with_logs(binary: &Path, env: &[(String, String)], events: &[Value]) -> (Vec<Outcome>, String) {
    let path = std::env::temp_dir().join(format!("arc-lambda-log-{}.txt", uuid::Uuid::new_v4().simple()));
    let outcomes = invoke(binary, env, events, Some(&path));
    let logs = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    (outcomes, logs)
}

fn invoke(binary: &Path, env: &[(String, String)], events: &[Value], log: Option<&Path>) -> Vec<Outcome> {
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
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(path) = log {
        let file = std::fs::File::create(path).expect("log file");
        let err = file.try_clone().expect("log file");
        cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
    }
    let mut child: Child = cmd.spawn().expect("spawn lambda binary");
    let mut outcomes = Vec::new();
    let mut next = 0usize;
    let mut parked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while outcomes.len() < events.len() && Instant::now() < deadline {
        let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(200)) else {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited with {status} before answering", binary.display());
            }
            continue;
        };
        let url = req.url().to_owned();
        if url.ends_with("/invocation/next") {
            if next >= events.len() {
                // Nothing more to hand out: keep the long poll open until we stop.
                parked.push(req);
                continue;
            }
            let id = format!("req-{next}");
            let deadline_ms = (now_ms() + 300_000).to_string();
            let mut resp = tiny_http::Response::from_string(events[next].to_string());
            next += 1;
            for (k, v) in [
                ("Lambda-Runtime-Aws-Request-Id", id.as_str()),
                ("Lambda-Runtime-Deadline-Ms", deadline_ms.as_str()),
                ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:local"),
                ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                ("Content-Type", "application/json"),
            ] {
                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    resp.add_header(h);
                }
            }
            let _ = req.respond(resp);
        } else {
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            if url.ends_with("/response") {
                outcomes.push(Outcome::Ok(value));
            } else {
                let error_type = value.get("errorType").and_then(Value::as_str).unwrap_or("").to_owned();
                let error_message = value.get("errorMessage").and_then(Value::as_str).unwrap_or("").to_owned();
                outcomes.push(Outcome::Err { error_type, error_message });
            }
            let _ = req.respond(tiny_http::Response::from_string("{\"status\":\"OK\"}").with_status_code(202));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(parked);
    assert_eq!(outcomes.len(), events.len(), "{} did not answer every event in time", binary.display());
    outcomes
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}
