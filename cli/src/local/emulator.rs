//! The local AWS the lifecycle runs against: moto started through `scripts/moto.sh` (or the
//! emulator `AWS_ENDPOINT_URL` names), and the resources a deployment would have, created as
//! the tests create them (`arc_shared::store::schema`): the two tables, the results bucket, and
//! a state machine for the sweeper's StartExecution calls to land on.

use crate::exit::CliError;
use arc_shared::store::{schema, Clients};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running emulator: one we started (and stop), or one someone else runs.
#[derive(Debug)]
pub struct Emulator {
    pub endpoint: String,
    /// The pid file of the server we started; `None` for an external one.
    pub pidfile: Option<PathBuf>,
    script: PathBuf,
}

/// The repository root: `ARC_REPO_ROOT`, else where this crate was built from.
pub fn repo_root() -> PathBuf {
    match std::env::var_os("ARC_REPO_ROOT") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

impl Emulator {
    /// Uses `AWS_ENDPOINT_URL` when set, else starts moto on a free loopback port.
    pub fn start_or_attach(suffix: &str) -> Result<Self, CliError> {
        let script = repo_root().join("scripts/moto.sh");
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            if !endpoint.trim().is_empty() {
                return Ok(Self { endpoint: endpoint.trim().to_owned(), pidfile: None, script });
            }
        }
        if !script.is_file() {
            return Err(CliError::failed(format!(
                "{} not found: run arc-local from a clone of the repository, set ARC_REPO_ROOT, or point \
                 AWS_ENDPOINT_URL at a running emulator",
                script.display()
            )));
        }
        let pidfile = std::env::temp_dir().join(format!("arc-local-{suffix}.pid"));
        eprintln!("starting moto (scripts/moto.sh start; the first run installs it into .venv-moto)…");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&pidfile)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| CliError::failed(format!("running {}: {e}", script.display())))?;
        if !out.status.success() {
            return Err(CliError::failed(format!("{} start failed ({})", script.display(), out.status)));
        }
        let endpoint = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_owned();
        if !endpoint.starts_with("http") {
            let me = Self { endpoint: String::new(), pidfile: Some(pidfile), script };
            me.stop();
            return Err(CliError::failed(format!("moto.sh start printed no endpoint URL (got {endpoint:?})")));
        }
        Ok(Self { endpoint, pidfile: Some(pidfile), script })
    }

    /// Stops the server we started (an external emulator is left alone).
    pub fn stop(&self) {
        if let Some(pidfile) = &self.pidfile {
            let status = Command::new("bash").arg(&self.script).arg("stop").arg(pidfile).stdin(Stdio::null()).status();
            if matches!(status, Ok(s) if s.success()) {
                // moto.sh writes its log beside the pid file.
                let _ = std::fs::remove_file(pidfile.with_extension("log"));
            } else {
                eprintln!("warning: could not stop moto (pid file {})", pidfile.display());
            }
        }
    }
}

/// The names of one lifecycle's resources.
#[derive(Debug, Clone)]
pub struct Resources {
    pub runs_table: String,
    pub tasks_table: String,
    pub breakers_table: String,
    pub bucket: String,
    pub state_machine_name: String,
    pub state_machine_arn: String,
}

impl Resources {
    /// The names of the resources of lifecycle `suffix`.
    pub fn named(suffix: &str, state_machine_arn: &str) -> Self {
        Self {
            runs_table: format!("arc_local_runs_{suffix}"),
            tasks_table: format!("arc_local_tasks_{suffix}"),
            breakers_table: format!("arc_local_breakers_{suffix}"),
            bucket: format!("arc-local-results-{suffix}"),
            state_machine_name: format!("arc-local-{suffix}"),
            state_machine_arn: state_machine_arn.to_owned(),
        }
    }
}

/// Creates the tables, the bucket and the state machine.
pub async fn create_resources(clients: &Clients, suffix: &str) -> Result<Resources, CliError> {
    let Resources { runs_table, tasks_table, breakers_table, bucket, state_machine_name, .. } =
        Resources::named(suffix, "");
    schema::create_tables(&clients.dynamodb, &runs_table, &tasks_table).await?;
    schema::create_breakers_table(&clients.dynamodb, &breakers_table).await?;
    schema::create_bucket(&clients.s3(), &bucket).await?;
    let state_machine_arn = schema::create_stand_in_state_machine(&clients.sfn, &state_machine_name).await?;
    Ok(Resources { runs_table, tasks_table, breakers_table, bucket, state_machine_name, state_machine_arn })
}
