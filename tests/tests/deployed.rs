//! The handlers and the sweeper against the tables, bucket and state machine that
//! `terraform apply` of terraform/examples/local created: proves that the module and the code
//! agree on names, keys and indexes. Run by scripts/check-terraform.sh (through
//! ARC_DEPLOYED_TEST_CMD) with the deployment's AWS_ENDPOINT_URL, RUNS_TABLE, TASKS_TABLE,
//! S3_BUCKET and STATE_MACHINE_ARN; ignored in a plain `cargo test`, where nothing is deployed.

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::JsonAnswer;
use arc_shared::records::s;
use arc_shared::runtime::Env;
use arc_shared::store::{Clients, CONFIG_INDEX, STATUS_INDEX};
use arc_shared::time::SystemClock;
use arc_shared::Config;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
#[ignore = "needs the deployment of terraform/examples/local: run by scripts/check-terraform.sh"]
async fn handlers_and_sweeper_work_on_the_deployed_resources() {
    let mut config = Config::from_env().expect("deployment environment");
    assert!(std::env::var("AWS_ENDPOINT_URL").is_ok(), "AWS_ENDPOINT_URL must point at the emulator");
    let sdk = arc_shared::store::sdk_defaults().load().await;
    let clients = Clients::from_conf(&sdk);

    // The deployed bucket is TLS-only, and the emulator speaks plain HTTP: it must refuse us
    // (in AWS the SDK uses HTTPS). The report then goes to a scratch bucket.
    let deployed_bucket = config.s3_bucket.clone().expect("S3_BUCKET of the deployment");
    let refused =
        clients.s3().put_object().bucket(&deployed_bucket).key("probe").body(b"x".to_vec().into()).send().await;
    assert!(refused.is_err(), "the deployed bucket accepted a plain-HTTP write: its TLS-only policy is missing");
    let scratch = format!("arc-deployed-scratch-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    clients.s3().create_bucket().bucket(&scratch).send().await.expect("scratch bucket");
    config.s3_bucket = Some(scratch);

    let env = Arc::new(Env { config: config.clone(), clients, clock: Arc::new(SystemClock) });
    let db = &env.clients.dynamodb;

    // The tables and indexes as the code expects them.
    let tasks = db.describe_table().table_name(&config.tasks_table).send().await.expect("tasks table").table.unwrap();
    let keys: Vec<_> =
        tasks.key_schema().iter().map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned())).collect();
    assert_eq!(keys, vec![("run_id".to_owned(), "HASH".to_owned()), ("task_id".to_owned(), "RANGE".to_owned())]);
    assert!(tasks.global_secondary_indexes().iter().any(|g| g.index_name() == Some(STATUS_INDEX)));
    let runs = db.describe_table().table_name(&config.runs_table).send().await.expect("runs table").table.unwrap();
    assert!(runs.global_secondary_indexes().iter().any(|g| g.index_name() == Some(CONFIG_INDEX)));

    let config_name = format!("deployed-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let out = initialize::handle(env.clone(), json!({"config_name": config_name, "task_ids": ["d1", "d2"]}))
        .await
        .json()
        .unwrap();
    let run_id = out["run_id"].as_str().unwrap().to_owned();
    db.update_item()
        .table_name(&config.tasks_table)
        .key("run_id", s(&run_id))
        .key("task_id", s("d1"))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", s("COMPLETED"))
        .send()
        .await
        .unwrap();
    let failed = handle_error::handle(
        env.clone(),
        json!({"run_id": run_id, "task_id": "d2", "error": {"Error": "States.TaskFailed", "Cause": "{\"JobId\":\"j-d2\"}"}}),
    )
    .await.json()
    .unwrap();
    assert_eq!(failed["status"], "RETRY_SCHEDULED");
    let agg = aggregate::handle(env.clone(), json!({"run_id": run_id})).await.json().unwrap();
    assert_eq!(agg["completed_tasks"], 1);
    assert_eq!(agg["failed_tasks"], 1);
    if let Some(bucket) = &config.s3_bucket {
        let key = agg["results_s3_key"].as_str().unwrap();
        env.clients.s3().head_object().bucket(bucket).key(key).send().await.expect("report in the deployed bucket");
    }
    let done = complete::handle(env.clone(), json!({"run_id": run_id, "aggregation": agg})).await.json().unwrap();
    assert_eq!(done["status"], "COMPLETED_WITH_ERRORS");

    // The GSIs answer the queries the operators and the sweeper make.
    let by_config = db
        .query()
        .table_name(&config.runs_table)
        .index_name(CONFIG_INDEX)
        .key_condition_expression("#c = :c")
        .expression_attribute_names("#c", "config_name")
        .expression_attribute_values(":c", s(&config_name))
        .send()
        .await
        .expect("config-created-index");
    assert_eq!(by_config.count, 1);

    // The sweeper retries the failed task on the deployed state machine.
    let deps = arc_sweeper::SweepDeps::from_env(&env).expect("sweeper settings (STATE_MACHINE_ARN)");
    let request = arc_sweeper::parse_request(json!({"run_id": run_id, "ignore_backoff": true})).unwrap();
    let summary = arc_sweeper::sweep(&deps, request).await.expect("sweep");
    let summary = serde_json::to_value(&summary).unwrap();
    assert_eq!(summary["requeued_total"], 1, "{summary}");
    assert_eq!(summary["executions_started"].as_array().map(Vec::len), Some(1), "{summary}");
    let task = env.tables().get_task(&run_id, "d2").await.unwrap().unwrap();
    assert_eq!(task.status.as_str(), "RETRY_QUEUED");
}
