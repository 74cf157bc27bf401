//! Test harness: a moto server (pinned, in the project's venv) started once per test process
//! on a free 127.0.0.1 port, fresh uniquely named tables and bucket per test, and a Lambda
//! Runtime API stand-in that drives the built binaries.

pub mod chaos;
pub mod keepalive;
pub mod runtime_api;

use arc_shared::runtime::Env;
use arc_shared::store::{schema, Clients, Tables, UpdateExpr};
use arc_shared::time::{Clock, SystemClock};
use arc_shared::Config;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

static ENDPOINT: OnceLock<Result<String, String>> = OnceLock::new();

/// The moto endpoint for this test process: `ARC_TEST_ENDPOINT` when set (an emulator that
/// someone else runs), else a server this process starts and that dies with it.
///
/// The server is the pinned moto behind `tests/support/moto_serial.py`, which handles one
/// request at a time: moto evaluates a ConditionExpression and applies the write without a
/// lock, so two concurrent conditional writes to one item can both succeed; in DynamoDB each
/// conditional write is atomic, and the concurrency tests depend on exactly that.
pub fn moto_endpoint() -> String {
    let r = ENDPOINT.get_or_init(|| match std::env::var("ARC_TEST_ENDPOINT") {
        Ok(e) if !e.is_empty() => Ok(e),
        _ => start_moto(),
    });
    match r {
        Ok(e) => e.clone(),
        Err(e) => panic!("cannot start moto: {e}"),
    }
}

fn start_moto() -> Result<String, String> {
    let root = repo_root();
    let script = root.join("scripts/moto.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("install")
        .status()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!("{} install failed", script.display()));
    }
    let venv = std::env::var("ARC_MOTO_VENV").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv-moto"));
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    // A watchdog shell: moto lives exactly as long as this test process.
    let watchdog = format!(
        "'{}' '{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null",
        venv.join("bin/python").display(),
        root.join("tests/support/moto_serial.py").display(),
        pid = std::process::id()
    );
    Command::new("bash").arg("-c").arg(watchdog).stdin(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("moto did not listen on 127.0.0.1:{port} within 30 s"))
}

/// SDK config pointed at the emulator with dummy credentials (as `arc-local`'s).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    schema::emulator_config(endpoint).await
}

/// One test's world: its own tables and bucket on the shared emulator.
pub struct TestEnv {
    pub endpoint: String,
    pub clients: Clients,
    pub config: Config,
    pub bucket: String,
}

impl TestEnv {
    /// Fresh tables and bucket; `overrides` are extra environment settings (`MAX_RETRIES`…).
    pub async fn new(overrides: &[(&str, &str)]) -> Self {
        Self::with_tables(overrides, false).await
    }

    /// Like [`TestEnv::new`], but with the tables a Python-set deployment has, exactly as its
    /// definitions create them (`schema::create_python_tables`): no `status-index` on the tasks
    /// table, and the worker's rate-limits table, named by [`TestEnv::rate_limits_table`].
    pub async fn python(overrides: &[(&str, &str)]) -> Self {
        Self::with_tables(overrides, true).await
    }

    /// The rate-limits table of a [`TestEnv::python`] world.
    pub fn rate_limits_table(&self) -> String {
        format!("rate_limits_of_{}", self.config.runs_table)
    }

    async fn with_tables(overrides: &[(&str, &str)], python: bool) -> Self {
        let endpoint = moto_endpoint();
        let conf = sdk_config(&endpoint).await;
        Self::create(&endpoint, &conf, overrides, python).await
    }

    /// A world (fresh tables — the Python set's with `python` — and bucket) on `endpoint`,
    /// reached with the SDK settings `conf`.
    pub async fn create(
        endpoint: &str,
        conf: &aws_config::SdkConfig,
        overrides: &[(&str, &str)],
        python: bool,
    ) -> Self {
        let clients = Clients::from_conf(conf);
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let suffix = &suffix[..12];
        let bucket = format!("arc-results-{suffix}");
        let mut vars: HashMap<String, String> = HashMap::from([
            ("RUNS_TABLE".to_owned(), format!("runs_{suffix}")),
            ("TASKS_TABLE".to_owned(), format!("tasks_{suffix}")),
            ("S3_BUCKET".to_owned(), bucket.clone()),
            ("BREAKERS_TABLE".to_owned(), format!("breakers_{suffix}")),
        ]);
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        if python {
            let rate_limits = format!("rate_limits_of_{}", config.runs_table);
            schema::create_python_tables(&clients.dynamodb, &config.runs_table, &config.tasks_table, &rate_limits)
                .await
                .expect("create the Python set's tables");
        } else {
            schema::create_tables(&clients.dynamodb, &config.runs_table, &config.tasks_table)
                .await
                .expect("create tables");
        }
        if !python {
            // The module's own table; a Python-set deployment gets it when the module is applied.
            schema::create_breakers_table(&clients.dynamodb, &config.breakers_table)
                .await
                .expect("create breakers table");
        }
        schema::create_bucket(&clients.s3(), &bucket).await.expect("create bucket");
        Self { endpoint: endpoint.to_owned(), clients, config, bucket }
    }

    /// A state machine in the emulator's Step Functions (which stores executions and, with
    /// execute_state_machine off, never runs them): a started execution stays RUNNING until
    /// StopExecution makes it ABORTED. Returns its ARN.
    pub async fn create_state_machine(&self, name: &str) -> String {
        schema::create_stand_in_state_machine(&self.clients.sfn, name).await.expect("create state machine")
    }

    pub fn tables(&self) -> Tables {
        Tables::new(self.clients.dynamodb.clone(), &self.config.runs_table, &self.config.tasks_table)
    }

    pub fn env(&self) -> Arc<Env> {
        self.env_with_clock(Arc::new(SystemClock))
    }

    /// What a sweep against this world needs: the sweeper's own `SweepDeps::from_env` over
    /// this test's tables, with `STATE_MACHINE_ARN` = `state_machine_arn` and `clock`.
    pub fn sweep_deps(&self, state_machine_arn: &str, clock: Arc<dyn Clock>) -> arc_sweeper::SweepDeps {
        let mut config = self.config.clone();
        config.state_machine_arn = Some(state_machine_arn.to_owned());
        let env = Env { config, clients: self.clients.clone(), clock };
        arc_sweeper::SweepDeps::from_env(&env).expect("sweep settings")
    }

    pub fn env_with_clock(&self, clock: Arc<dyn Clock>) -> Arc<Env> {
        Arc::new(Env { config: self.config.clone(), clients: self.clients.clone(), clock })
    }

    /// The environment a deployed function would see, for driving the built binaries.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("AWS_ENDPOINT_URL".to_owned(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("RUNS_TABLE".to_owned(), self.config.runs_table.clone()),
            ("TASKS_TABLE".to_owned(), self.config.tasks_table.clone()),
            ("BREAKERS_TABLE".to_owned(), self.config.breakers_table.clone()),
            ("MAX_RETRIES".to_owned(), self.config.max_retries.to_string()),
            ("INFRA_MAX_RETRIES".to_owned(), self.config.infra_max_retries.to_string()),
        ];
        if let Some(b) = &self.config.s3_bucket {
            v.push(("S3_BUCKET".to_owned(), b.clone()));
        }
        v
    }

    /// Sets attributes of one task as another writer (the Python worker, an operator) would.
    pub async fn set_task(&self, run_id: &str, task_id: &str, attrs: &[(&str, AttributeValue)]) {
        self.set_attrs(&self.config.tasks_table, Tables::task_key(run_id, task_id), attrs).await;
    }

    /// Sets attributes of one run as another writer would.
    pub async fn set_run(&self, run_id: &str, attrs: &[(&str, AttributeValue)]) {
        self.set_attrs(&self.config.runs_table, Tables::run_key(run_id), attrs).await;
    }

    async fn set_attrs(&self, table: &str, key: arc_shared::records::Item, attrs: &[(&str, AttributeValue)]) {
        let update = attrs.iter().fold(UpdateExpr::new(), |u, (k, v)| u.set(k, v.clone()));
        update
            .apply(self.clients.dynamodb.update_item().table_name(table).set_key(Some(key)))
            .send()
            .await
            .expect("update item");
    }

    /// Arms a fault in the test emulator (`tests/support/moto_serial.py`): the next `count`
    /// requests matching `fault` get its canned answer. Match on this test's own table or
    /// bucket name so that tests running side by side never see each other's faults.
    pub async fn inject_fault(&self, fault: serde_json::Value) {
        let out = self.fault_api("POST", &fault.to_string()).await;
        assert!(out.is_object(), "the emulator did not accept the fault (is it tests/support/moto_serial.py?)");
    }

    /// How many matches each armed fault whose JSON contains `needle` has left.
    pub async fn faults_left(&self, needle: &str) -> Vec<u64> {
        let all = self.fault_api("GET", "").await;
        all.as_array()
            .into_iter()
            .flatten()
            .filter(|f| f.to_string().contains(needle))
            .map(|f| f["count"].as_u64().unwrap_or(0))
            .collect()
    }

    async fn fault_api(&self, method: &'static str, body: &str) -> serde_json::Value {
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        let body = body.to_owned();
        let text = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr)?;
            write!(
                s,
                "{method} /_arc/faults HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<String, std::io::Error>(out)
        })
        .await
        .expect("fault request")
        .expect("fault request");
        let json = text.split("\r\n\r\n").nth(1).unwrap_or("null");
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
    }

    /// Every item of both tables, sorted, for byte-for-byte comparisons.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for table in [&self.config.runs_table, &self.config.tasks_table] {
            let mut start = None;
            loop {
                let page = self
                    .clients
                    .dynamodb
                    .scan()
                    .table_name(table)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .expect("scan");
                for item in page.items.unwrap_or_default() {
                    let mut pairs: Vec<_> = item.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    pairs.sort();
                    out.push(format!("{table}: {}", pairs.join(", ")));
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        out.sort();
        out
    }
}

/// The directory cargo put this workspace's binaries in (target/debug).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test-binary>
    exe.parent().and_then(|p| p.parent()).map(PathBuf::from).expect("target dir")
}

/// The path of a built Lambda binary; panics with the fix if it was not built.
pub fn lambda_binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` (the README's test command does)",
        p.display()
    );
    p
}

/// What a CLI binary did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout as JSON (a command run with `--json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs a workspace binary (`arcctl`, `arc-local`) with `env` on top of this process's
/// environment, less the settings a developer's shell may carry that would change what the
/// command does (`STATE_MACHINE_ARN`, `DYNAMODB_RATE_LIMIT_TABLE`), and prints the exchange.
pub fn run_binary(binary: &str, env: &[(String, String)], args: &[&str]) -> Out {
    let out = Command::new(lambda_binary(binary))
        .args(args)
        .env_remove("STATE_MACHINE_ARN")
        .env_remove("DYNAMODB_RATE_LIMIT_TABLE")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run binary");
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("$ {binary} {}\n{}{}(exit {})", args.join(" "), o.stdout, o.stderr, o.code);
    o
}

/// A handler's typed answer as the JSON the runtime would send (tests read fields by name).
pub trait JsonAnswer {
    fn json(self) -> Result<serde_json::Value, arc_shared::ArcError>;
}

impl<O: serde::Serialize> JsonAnswer for Result<O, arc_shared::ArcError> {
    fn json(self) -> Result<serde_json::Value, arc_shared::ArcError> {
        self.map(|o| serde_json::to_value(o).expect("a handler's answer serializes"))
    }
}
