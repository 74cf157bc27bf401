//! The IAM grants Terraform gives each function (terraform/function_permissions.json: resource
//! class → actions) equal the AWS operations that function's code calls on those resources: no
//! more, no less. The calls are read from the source of the function's own files and the
//! shared store helpers they use; a call whose table the scan cannot tell fails the test.

use arc_integration_tests::repo_root;
use serde_json::Value;
use std::collections::BTreeSet;

/// SDK fluent calls → the IAM action each needs, and the resource class when the call is not
/// on a DynamoDB table (for tables the class is read from the call's `table_name`).
/// TransactWriteItems is authorised per item (dynamodb:UpdateItem on each table it updates).
const SDK_CALLS: &[(&str, &str, Option<&str>)] = &[
    (".get_item()", "dynamodb:GetItem", None),
    (".put_item()", "dynamodb:PutItem", None),
    (".update_item()", "dynamodb:UpdateItem", None),
    (".batch_write_item()", "dynamodb:BatchWriteItem", None),
    (".query()", "dynamodb:Query", None),
    (".scan()", "dynamodb:Scan", None),
    (".describe_table()", "dynamodb:DescribeTable", None),
    (".delete_item()", "dynamodb:DeleteItem", None),
    (".put_object()", "s3:PutObject", Some("results_objects")),
    (".get_object()", "s3:GetObject", Some("results_objects")),
    (".put_metric_data()", "cloudwatch:PutMetricData", Some("cloudwatch_metrics")),
    (".start_execution()", "states:StartExecution", Some("state_machine")),
    (".describe_execution()", "states:DescribeExecution", Some("executions")),
    (".list_executions()", "states:ListExecutions", Some("state_machine")),
    (".stop_execution()", "states:StopExecution", Some("executions")),
];

/// Shared store helpers → the (resource class, action) inside them.
const HELPERS: &[(&str, &str, &str)] = &[
    (".get_run(", "runs_table", "dynamodb:GetItem"),
    (".require_run(", "runs_table", "dynamodb:GetItem"),
    (".get_task(", "tasks_table", "dynamodb:GetItem"),
    (".for_each_task(", "tasks_table", "dynamodb:Query"),
    (".for_each_task_item(", "tasks_table", "dynamodb:Query"),
    (".run_tasks(", "tasks_table", "dynamodb:Query"),
    // The failure model's writes (shared/src/store/failures.rs): a conditional task update, in
    // one transaction with the run's counter when the task becomes permanent; settling reads
    // a task again when it changed meanwhile.
    (".record_failure(", "tasks_table", "dynamodb:UpdateItem"),
    (".record_failure(", "runs_table", "dynamodb:UpdateItem"),
    (".settle_in_flight(", "tasks_table", "dynamodb:UpdateItem"),
    (".settle_in_flight(", "runs_table", "dynamodb:UpdateItem"),
    (".settle_in_flight(", "tasks_table", "dynamodb:GetItem"),
    // handlers/src/aggregate.rs's wrapper of it, which complete calls too.
    ("settle_left_in_flight(", "tasks_table", "dynamodb:UpdateItem"),
    ("settle_left_in_flight(", "runs_table", "dynamodb:UpdateItem"),
    ("settle_left_in_flight(", "tasks_table", "dynamodb:GetItem"),
    (".make_permanent(", "tasks_table", "dynamodb:UpdateItem"),
    (".make_permanent(", "runs_table", "dynamodb:UpdateItem"),
    // The results bucket (shared/src/store/objects.rs).
    ("put_json(", "results_objects", "s3:PutObject"),
    ("get_string_list(", "results_objects", "s3:GetObject"),
];

type Grant = (String, String);

/// The table class named in a call chain: the text from the call to its `.send()`.
fn table_class(chain: &str) -> Option<&'static str> {
    if chain.contains("index_name(STATUS_INDEX)") {
        Some("tasks_status_index")
    } else if chain.contains("&tables.runs") {
        Some("runs_table")
    } else if chain.contains("&tables.tasks") {
        Some("tasks_table")
    } else {
        None
    }
}

fn code_grants(files: &[String]) -> Result<BTreeSet<Grant>, String> {
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(repo_root().join(f)).map_err(|e| format!("{f}: {e}"))?;
        // Only the code that ships: drop the unit-test module at the end of a file.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (pat, action, class) in SDK_CALLS {
            for (pos, _) in code.match_indices(pat) {
                let rest = &code[pos..];
                let chain = &rest[..rest.find(".send()").unwrap_or(rest.len().min(400))];
                let class = match class {
                    Some(c) => *c,
                    None => {
                        table_class(chain).ok_or_else(|| format!("{f}: cannot tell the table of {pat} in {chain:?}"))?
                    }
                };
                out.insert((class.to_owned(), (*action).to_owned()));
            }
        }
        for (pat, class, action) in HELPERS {
            if code.contains(pat) {
                out.insert(((*class).to_owned(), (*action).to_owned()));
            }
        }
        for (pos, _) in code.match_indices("batch_put(&") {
            let args = &code[pos..code[pos..].find(')').map_or(code.len(), |e| pos + e)];
            let class =
                table_class(args).ok_or_else(|| format!("{f}: cannot tell the table of batch_put in {args:?}"))?;
            out.insert((class.to_owned(), "dynamodb:BatchWriteItem".to_owned()));
        }
        if code.contains(".transact_write_items()") {
            for (pos, _) in code.match_indices("into_transact(") {
                let args = &code[pos..code[pos..].find(')').map_or(code.len(), |e| pos + e)];
                let class = table_class(args).ok_or_else(|| format!("{f}: cannot tell the table of {args:?}"))?;
                out.insert((class.to_owned(), "dynamodb:UpdateItem".to_owned()));
            }
        }
    }
    Ok(out)
}

fn granted(perms: &Value, function: &str) -> BTreeSet<Grant> {
    let Some(classes) = perms[function].as_object() else {
        panic!("{function} missing from function_permissions.json");
    };
    classes
        .iter()
        .flat_map(|(class, actions)| {
            actions
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |a| a.as_str().map(|a| (class.clone(), a.to_owned())))
        })
        .collect()
}

#[test]
fn granted_actions_equal_called_operations() {
    let perms: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("terraform/function_permissions.json")).unwrap(),
    )
    .unwrap();
    let sweeper_files: Vec<String> = std::fs::read_dir(repo_root().join("sweeper/src"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| format!("sweeper/src/{}", e.file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".rs"))
        .collect();
    let functions: Vec<(&str, Vec<String>)> = vec![
        ("initialize", vec!["handlers/src/initialize.rs".into()]),
        ("handle-error", vec!["handlers/src/handle_error.rs".into()]),
        ("aggregate", vec!["handlers/src/aggregate.rs".into()]),
        ("complete", vec!["handlers/src/complete.rs".into()]),
        ("sweeper", sweeper_files),
    ];
    let mut problems = Vec::new();
    for (name, files) in &functions {
        let code = code_grants(files).unwrap_or_else(|e| panic!("{e}"));
        let iam = granted(&perms, name);
        assert!(!code.is_empty(), "{name}: no AWS calls found; is the scan broken?");
        let missing: Vec<_> = code.difference(&iam).collect();
        let extra: Vec<_> = iam.difference(&code).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!("{name}: not granted but called {missing:?}; granted but never called {extra:?}"));
        }
    }
    let listed: BTreeSet<&str> = perms.as_object().unwrap().keys().map(String::as_str).collect();
    let known: BTreeSet<&str> = functions.iter().map(|(n, _)| *n).collect();
    assert_eq!(listed, known, "function_permissions.json lists exactly the five functions");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
