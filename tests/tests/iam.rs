//! The IAM actions Terraform grants each function (terraform/function_permissions.json) equal
//! the AWS operations that function's code calls: no more, no less. The calls are read from the
//! source of the function's own files plus the shared store helpers it uses.

use arc_integration_tests::repo_root;
use serde_json::Value;
use std::collections::BTreeSet;

/// SDK fluent calls → the IAM action each needs. TransactWriteItems is authorised per item
/// (dynamodb:UpdateItem for the updates this product puts in transactions).
const SDK_CALLS: &[(&str, &str)] = &[
    (".get_item()", "dynamodb:GetItem"),
    (".put_item()", "dynamodb:PutItem"),
    (".update_item()", "dynamodb:UpdateItem"),
    (".transact_write_items()", "dynamodb:UpdateItem"),
    (".batch_write_item()", "dynamodb:BatchWriteItem"),
    (".query()", "dynamodb:Query"),
    (".scan()", "dynamodb:Scan"),
    (".delete_item()", "dynamodb:DeleteItem"),
    (".put_object()", "s3:PutObject"),
    (".put_metric_data()", "cloudwatch:PutMetricData"),
    (".start_execution()", "states:StartExecution"),
    (".describe_execution()", "states:DescribeExecution"),
    (".list_executions()", "states:ListExecutions"),
    (".stop_execution()", "states:StopExecution"),
];

/// Shared store helpers → the operations inside them.
const HELPERS: &[(&str, &str)] = &[
    (".get_run(", "dynamodb:GetItem"),
    (".require_run(", "dynamodb:GetItem"),
    (".get_task(", "dynamodb:GetItem"),
    (".for_each_task(", "dynamodb:Query"),
    (".run_tasks(", "dynamodb:Query"),
    ("batch_put(", "dynamodb:BatchWriteItem"),
];

fn code_actions(files: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(repo_root().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        // Only the code that ships: drop the unit-test module at the end of a file.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (pat, action) in SDK_CALLS.iter().chain(HELPERS) {
            if code.contains(pat) {
                out.insert((*action).to_owned());
            }
        }
    }
    out
}

fn granted(perms: &Value, function: &str) -> BTreeSet<String> {
    perms[function]
        .as_object()
        .unwrap_or_else(|| panic!("{function} missing from function_permissions.json"))
        .values()
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
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
        let code = code_actions(files);
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
