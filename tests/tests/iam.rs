//! The IAM grants Terraform gives each function (terraform/function_permissions.json: resource
//! class → actions) equal the AWS operations that function's code calls on those resources: no
//! more, no less. The calls are read from the source: the function's own files, and every store
//! operation (a function of shared/src/store) they call, with what that operation calls in
//! turn. A call whose table the scan cannot tell, or an SDK call it does not know, fails the test.

use arc_integration_tests::repo_root;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
    // shared/src/store/objects.rs signs its own S3 requests: `Call { operation: "<Operation>", … }`.
    ("operation: \"PutObject\"", "s3:PutObject", Some("results_objects")),
    ("operation: \"GetObject\"", "s3:GetObject", Some("results_objects")),
    (".put_metric_data()", "cloudwatch:PutMetricData", Some("cloudwatch_metrics")),
    (".start_execution()", "states:StartExecution", Some("state_machine")),
    (".describe_execution()", "states:DescribeExecution", Some("executions")),
    (".list_executions()", "states:ListExecutions", Some("state_machine")),
    (".stop_execution()", "states:StopExecution", Some("executions")),
];

const TRANSACT: &str = ".transact_write_items()";

/// Functions of the handlers that wrap a store operation and that another handler calls:
/// (wrapper, store operation).
const WRAPPERS: &[(&str, &str)] = &[
    // handlers/src/aggregate.rs's wrapper of settling, which complete calls too.
    ("settle_left_in_flight", "settle_in_flight"),
];

type Grant = (String, String);

/// What a piece of code calls.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Calls {
    grants: BTreeSet<Grant>,
    /// Actions on a table the caller passes in (`batch_put(db, table, …)`).
    on_caller_table: BTreeSet<String>,
    /// `.send()`s the scan could not attribute to a known SDK call.
    unknown: BTreeSet<String>,
}

impl Calls {
    fn absorb(&mut self, other: &Calls) {
        self.grants.extend(other.grants.iter().cloned());
        self.on_caller_table.extend(other.on_caller_table.iter().cloned());
        self.unknown.extend(other.unknown.iter().cloned());
    }
}

/// The table class named in a call chain or an argument list.
fn table_class(text: &str) -> Option<&'static str> {
    if text.contains("index_name(STATUS_INDEX)") {
        Some("tasks_status_index")
    } else if text.contains("&tables.runs") || text.contains("&self.runs") {
        Some("runs_table")
    } else if text.contains("&tables.tasks") || text.contains("&self.tasks") {
        Some("tasks_table")
    } else if text.contains("&self.breakers") {
        Some("breakers_table")
    } else {
        None
    }
}

/// Code without the unit-test module at the end and without comment lines.
fn shipped(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The name a line declares as a function, if it does.
fn declared_fn(line: &str) -> Option<&str> {
    let mut l = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async "] {
        l = l.strip_prefix(prefix).unwrap_or(l);
    }
    let rest = l.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// A function of the store: its source up to the next function, and whether it is a method
/// (called as `.name(`) or not (called as `name(` or `path::name(`).
#[derive(Debug, Default)]
struct StoreFn {
    body: String,
    method: bool,
}

/// Each function of the store by name (functions of one name in several files are one).
fn store_functions() -> BTreeMap<String, StoreFn> {
    let dir = repo_root().join("shared/src/store");
    let mut out: BTreeMap<String, StoreFn> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let code = shipped(&std::fs::read_to_string(&path).unwrap());
        let lines: Vec<&str> = code.lines().collect();
        let mut current: Option<String> = None;
        for (i, line) in lines.iter().enumerate() {
            if let Some(name) = declared_fn(line) {
                current = Some(name.to_owned());
                let f = out.entry(name.to_owned()).or_default();
                // The receiver is the first parameter (`&self`, `self`, `&mut self`), maybe on
                // the next line.
                let signature = lines[i..lines.len().min(i + 3)].join(" ");
                // The parameters: after `fn name` and its generics, if any.
                let after_name = signature.split_once(&format!("fn {name}")).map_or("", |(_, p)| p);
                let params = after_name.split_once('(').map_or("", |(_, p)| p).trim_start();
                let method = ["&self", "self", "&mut self", "mut self"].iter().any(|r| params.starts_with(r));
                // One name for a method and a free function would hide the calls of one of
                // them (they are told apart by the `.` before the call): fail instead.
                assert!(
                    f.body.is_empty() || f.method == method,
                    "shared/src/store declares `{name}` both as a method and as a function: rename one"
                );
                f.method = method;
            }
            if let Some(f) = current.as_ref().and_then(|name| out.get_mut(name)) {
                f.body.push_str(line);
                f.body.push('\n');
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The argument text of each call of `name(` in `code` (not its declaration, not a longer
/// name): method calls (`.name(`) when `method`, else calls that are not method calls.
fn call_args<'a>(code: &'a str, name: &str, method: bool) -> Vec<&'a str> {
    let pat = format!("{name}(");
    code.match_indices(&pat)
        .filter(|(pos, _)| {
            let before = &code[..*pos];
            !before.ends_with(is_ident) && !before.ends_with("fn ") && before.trim_end().ends_with('.') == method
        })
        .map(|(pos, _)| {
            let start = pos + pat.len();
            let end = code[start..].find(')').map_or(code.len(), |e| start + e);
            &code[start..end]
        })
        .collect()
}

/// A store operation: what it calls (its calls of other store operations included), and
/// whether it is a method.
#[derive(Debug, Clone)]
struct Op {
    calls: Calls,
    method: bool,
}

type Ops = BTreeMap<String, Op>;

/// What `code` calls directly and through the store operations in `ops`. `None` for a table
/// no one names: in store code the caller's argument decides, elsewhere it is an error.
fn scan(code: &str, ops: &Ops, me: Option<&str>, is_store: bool, whence: &str) -> Result<Calls, String> {
    let mut out = Calls::default();
    let mut known_at: Vec<usize> = Vec::new();
    let on_table = |out: &mut Calls, class: Option<&str>, action: &str, what: &str| -> Result<(), String> {
        match class {
            Some(c) => {
                out.grants.insert((c.to_owned(), action.to_owned()));
                Ok(())
            }
            None if is_store => {
                out.on_caller_table.insert(action.to_owned());
                Ok(())
            }
            None => Err(format!("{whence}: cannot tell the table of {action} in {what:?}")),
        }
    };
    for (pat, action, class) in SDK_CALLS {
        for (pos, _) in code.match_indices(pat) {
            known_at.push(pos);
            let rest = &code[pos..];
            let chain = &rest[..rest.find(".send()").unwrap_or(rest.len().min(400))];
            on_table(&mut out, class.map_or_else(|| table_class(chain), Some), action, chain)?;
        }
    }
    for (pos, _) in code.match_indices(TRANSACT) {
        known_at.push(pos);
        for args in call_args(code, "into_transact", true) {
            on_table(&mut out, table_class(args), "dynamodb:UpdateItem", args)?;
        }
    }
    // Every `.send()` belongs to a known SDK call before it, with no other send between.
    let sends: Vec<usize> = code.match_indices(".send()").map(|(p, _)| p).collect();
    for (i, &send) in sends.iter().enumerate() {
        let after_previous = if i == 0 { 0 } else { sends[i - 1] };
        if !known_at.iter().any(|&k| k >= after_previous && k < send) {
            let from = code[..send].rfind(['\n', ';']).map_or(0, |p| p + 1);
            out.unknown.insert(format!("{whence}: {}", code[from..send + 7].trim()));
        }
    }
    let wrapped = WRAPPERS.iter().filter_map(|(w, op)| ops.get(*op).map(|o| (*w, &o.calls, false)));
    for (name, calls, method) in ops.iter().map(|(n, o)| (n.as_str(), &o.calls, o.method)).chain(wrapped) {
        if Some(name) == me || calls == &Calls::default() {
            continue;
        }
        for args in call_args(code, name, method) {
            out.grants.extend(calls.grants.iter().cloned());
            out.unknown.extend(calls.unknown.iter().cloned());
            for action in &calls.on_caller_table {
                on_table(&mut out, table_class(args), action, args)?;
            }
        }
    }
    Ok(out)
}

/// Every store operation, what it calls followed through the others until nothing changes.
fn store_calls() -> Result<Ops, String> {
    let functions = store_functions();
    let mut ops: Ops =
        functions.iter().map(|(n, f)| (n.clone(), Op { calls: Calls::default(), method: f.method })).collect();
    loop {
        let mut changed = false;
        for (name, f) in &functions {
            let mut calls = scan(&f.body, &ops, Some(name), true, &format!("store {name}"))?;
            calls.absorb(&ops[name].calls);
            if calls != ops[name].calls {
                changed = true;
                ops.insert(name.clone(), Op { calls, method: f.method });
            }
        }
        if !changed {
            return Ok(ops);
        }
    }
}

fn code_calls(files: &[String], ops: &Ops) -> Result<Calls, String> {
    let mut out = Calls::default();
    for f in files {
        let text = std::fs::read_to_string(repo_root().join(f)).map_err(|e| format!("{f}: {e}"))?;
        out.absorb(&scan(&shipped(&text), ops, None, false, f)?);
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

fn sweeper_files() -> Vec<String> {
    std::fs::read_dir(repo_root().join("sweeper/src"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| format!("sweeper/src/{}", e.file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".rs"))
        .collect()
}

#[test]
fn granted_actions_equal_called_operations() {
    let perms: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("terraform/function_permissions.json")).unwrap(),
    )
    .unwrap();
    let ops = store_calls().unwrap_or_else(|e| panic!("{e}"));
    let functions: Vec<(&str, Vec<String>)> = vec![
        ("initialize", vec!["handlers/src/initialize.rs".into()]),
        ("handle-error", vec!["handlers/src/handle_error.rs".into()]),
        ("aggregate", vec!["handlers/src/aggregate.rs".into()]),
        ("complete", vec!["handlers/src/complete.rs".into()]),
        ("sweeper", sweeper_files()),
    ];
    let mut problems = Vec::new();
    for (name, files) in &functions {
        let calls = code_calls(files, &ops).unwrap_or_else(|e| panic!("{e}"));
        assert!(calls.unknown.is_empty(), "{name}: SDK calls the scan does not know: {:?}", calls.unknown);
        let code = calls.grants;
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

#[test]
fn the_scan_follows_store_operations_to_their_calls() {
    let ops = store_calls().unwrap_or_else(|e| panic!("{e}"));
    let grants = |op: &str| -> BTreeSet<(&str, &str)> {
        ops[op].calls.grants.iter().map(|(c, a)| (c.as_str(), a.as_str())).collect()
    };
    // Through another operation (StartExecution describes an execution that already exists).
    assert_eq!(
        grants("start"),
        [("executions", "states:DescribeExecution"), ("state_machine", "states:StartExecution")].into()
    );
    // Through a private helper (the index check after a failed status-index Query).
    assert_eq!(
        grants("failed_tasks"),
        [("tasks_status_index", "dynamodb:Query"), ("tasks_table", "dynamodb:DescribeTable")].into()
    );
    // Through a transaction's items.
    assert_eq!(
        grants("make_permanent"),
        [("runs_table", "dynamodb:UpdateItem"), ("tasks_table", "dynamodb:UpdateItem")].into()
    );
    // On the table the caller passes.
    assert!(ops["batch_put"].calls.on_caller_table.contains("dynamodb:BatchWriteItem"));
    assert!(ops["batch_put"].calls.grants.is_empty());
}

#[test]
fn the_sweeper_calls_aws_only_through_the_store() {
    for f in sweeper_files() {
        let code = shipped(&std::fs::read_to_string(repo_root().join(&f)).unwrap());
        assert!(!code.contains(".send()"), "{f} calls the AWS SDK itself; its calls belong in shared/src/store");
    }
}
