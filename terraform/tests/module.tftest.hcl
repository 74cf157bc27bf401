# `terraform test` of the module with a mocked AWS provider: no emulator, no
# credentials. Run from terraform/: `terraform init -backend=false && terraform test`
# (scripts/check-terraform.sh does). The real apply is the moto run of examples/local.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }

  mock_data "aws_dynamodb_table" {
    defaults = {
      hash_key  = "run_id"
      range_key = "task_id"
      arn       = "arn:aws:dynamodb:us-east-1:123456789012:table/existing"
      global_secondary_index = [
        { name = "config-created-index", hash_key = "config_name", range_key = "created_at", projection_type = "ALL" },
        { name = "status-index", hash_key = "status", range_key = "updated_at", projection_type = "ALL" },
      ]
    }
  }

  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mocked" }
  }

  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mocked" }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mocked" }
  }

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mocked" }
  }
}

variables {
  batch_job_queue_arn      = "arn:aws:batch:us-east-1:123456789012:job-queue/arc-benchmark"
  batch_job_definition_arn = "arn:aws:batch:us-east-1:123456789012:job-definition/arc-benchmark-worker:3"
  lambda_zip_dir           = "tests/fixtures/lambda"
}

run "defaults" {
  command = apply

  override_resource {
    target = aws_sfn_state_machine.this
    values = { arn = "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline" }
  }

  assert {
    condition     = toset(keys(aws_lambda_function.this)) == toset(["initialize", "handle-error", "aggregate", "complete", "sweeper"])
    error_message = "one function per binary"
  }

  assert {
    condition     = aws_lambda_function.this["handle-error"].function_name == "arc-benchmark-handle-error"
    error_message = "functions are named <name_prefix>-<binary>"
  }

  assert {
    condition = alltrue([for fn in aws_lambda_function.this :
      fn.runtime == "provided.al2023" && fn.handler == "bootstrap" && fn.architectures == tolist(["arm64"])
    ])
    error_message = "provided.al2023, bootstrap, arm64 by default"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].environment[0].variables["STATE_MACHINE_ARN"] == "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline"
    error_message = "the sweeper starts executions of this module's state machine"
  }

  assert {
    condition     = !contains(keys(aws_lambda_function.this["initialize"].environment[0].variables), "STATE_MACHINE_ARN")
    error_message = "only the sweeper gets the sweeper's settings"
  }

  assert {
    condition = aws_lambda_function.this["complete"].environment[0].variables == tomap({
      RUNS_TABLE           = "arc_benchmark_runs"
      TASKS_TABLE          = "arc_task_progress"
      S3_BUCKET            = "arc-benchmark-results-123456789012"
      MAX_RETRIES          = "3"
      CLOUDWATCH_NAMESPACE = "ArcBenchmark"
      NON_RETRYABLE_ERRORS = ""
    })
    error_message = "the environment of DESIGN.md section 6 with its defaults"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].environment[0].variables["SWEEPER_BASE_DELAY_SECONDS"] == "300" && aws_lambda_function.this["sweeper"].environment[0].variables["SWEEPER_MAX_DELAY_SECONDS"] == "21600" && aws_lambda_function.this["sweeper"].environment[0].variables["SWEEPER_MAX_TASKS"] == "1000"
    error_message = "sweeper backoff and bound defaults"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].timeout == 300 && aws_lambda_function.this["initialize"].timeout == 60
    error_message = "timeouts"
  }

  assert {
    condition     = aws_dynamodb_table.runs[0].name == "arc_benchmark_runs" && aws_dynamodb_table.runs[0].hash_key == "run_id" && aws_dynamodb_table.runs[0].range_key == null
    error_message = "runs table: arc_benchmark_runs, hash key run_id"
  }

  assert {
    condition     = [for gsi in aws_dynamodb_table.runs[0].global_secondary_index : [gsi.name, gsi.hash_key, gsi.range_key, gsi.projection_type]] == [["config-created-index", "config_name", "created_at", "ALL"]]
    error_message = "runs GSI config-created-index: config_name / created_at, ALL"
  }

  assert {
    condition     = aws_dynamodb_table.tasks[0].name == "arc_task_progress" && aws_dynamodb_table.tasks[0].hash_key == "run_id" && aws_dynamodb_table.tasks[0].range_key == "task_id"
    error_message = "tasks table: arc_task_progress, run_id / task_id"
  }

  assert {
    condition     = [for gsi in aws_dynamodb_table.tasks[0].global_secondary_index : [gsi.name, gsi.hash_key, gsi.range_key, gsi.projection_type]] == [["status-index", "status", "updated_at", "ALL"]]
    error_message = "tasks GSI status-index: status / updated_at, ALL"
  }

  assert {
    condition = alltrue([for t in [aws_dynamodb_table.runs[0], aws_dynamodb_table.tasks[0]] :
      t.billing_mode == "PAY_PER_REQUEST" && t.point_in_time_recovery[0].enabled && t.server_side_encryption[0].enabled && t.deletion_protection_enabled
    ])
    error_message = "on-demand, PITR, SSE and deletion protection on both tables"
  }

  assert {
    condition     = aws_s3_bucket_versioning.results[0].versioning_configuration[0].status == "Enabled" && aws_s3_bucket_public_access_block.results[0].restrict_public_buckets
    error_message = "the results bucket is versioned and private"
  }

  assert {
    condition     = aws_scheduler_schedule.sweeper[0].schedule_expression == "rate(15 minutes)" && aws_scheduler_schedule.sweeper[0].target[0].arn == aws_lambda_function.this["sweeper"].arn
    error_message = "the schedule invokes the sweeper every 15 minutes"
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.MaxConcurrency == 10
    error_message = "MaxConcurrency comes from map_max_concurrency"
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ItemProcessor.States.RunBatchJob.Parameters.JobDefinition == var.batch_job_definition_arn
    error_message = "the Batch job definition is the module input"
  }

  assert {
    condition = [for e in jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ItemProcessor.States.RunBatchJob.Parameters.ContainerOverrides.Environment : e.Name] == [
      "RUN_ID", "TASK_ID", "CONFIG_NAME", "S3_BUCKET", "DYNAMODB_RUNS_TABLE", "DYNAMODB_TASKS_TABLE",
    ]
    error_message = "the worker's environment names"
  }

  assert {
    condition     = local.batch_job_definition_family_arn == "arn:aws:batch:us-east-1:123456789012:job-definition/arc-benchmark-worker"
    error_message = "the job definition grant covers every revision"
  }

  assert {
    condition = jsonencode([for c in one([for st in data.aws_iam_policy_document.function["complete"].statement : st if st.sid == "CloudwatchMetrics"]).condition :
      [c.test, c.variable, sort(c.values)]
    ]) == jsonencode([["StringEquals", "cloudwatch:namespace", ["ArcBenchmark"]]])
    error_message = "PutMetricData is conditioned on the namespace"
  }

  assert {
    condition = toset([for st in data.aws_iam_policy_document.function["sweeper"].statement : st.sid]) == toset([
      "OwnLogGroup", "RunsTable", "TasksTable", "TasksStatusIndex", "StateMachine", "Executions", "CloudwatchMetrics",
    ])
    error_message = "the sweeper's policy has one statement per resource class of function_permissions.json, plus its log group"
  }

  assert {
    condition     = one([for st in data.aws_iam_policy_document.function["sweeper"].statement : st if st.sid == "Executions"]).resources == toset(["arn:aws:states:us-east-1:123456789012:execution:arc-benchmark-pipeline:*"])
    error_message = "DescribeExecution only on this state machine's executions"
  }

  assert {
    condition     = one([for st in data.aws_iam_policy_document.function["aggregate"].statement : st if st.sid == "ResultsObjects"]).resources == toset(["arn:aws:s3:::arc-benchmark-results-123456789012/runs/*"])
    error_message = "aggregate writes only under runs/"
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.sweeper_errors) == 1 && length(aws_cloudwatch_metric_alarm.executions_failed) == 1 && length(aws_cloudwatch_metric_alarm.tasks_failed_permanently) == 1 && length(aws_cloudwatch_metric_alarm.sweeper_errors[0].alarm_actions) == 0
    error_message = "three alarms, no actions without an SNS topic"
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.tasks_failed_permanently[0].metric_transformation[0].namespace == "ArcBenchmark"
    error_message = "the permanent-failure metric is in the namespace"
  }
}

run "sandbox_names_and_options" {
  command   = plan
  state_key = "sandbox"

  override_resource {
    target = aws_sfn_state_machine.this
    values = { arn = "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-sandbox-teal-pipeline" }
  }

  variables {
    name_prefix          = "arc-benchmark-sandbox-teal"
    lambda_architecture  = "x86_64"
    non_retryable_errors = ["InvalidTask", "QuotaExceeded"]
    alarm_sns_topic_arn  = "arn:aws:sns:us-east-1:123456789012:arc-alerts"
    enable_schedule      = false
  }

  assert {
    condition     = aws_lambda_function.this["initialize"].function_name == "arc-benchmark-sandbox-teal-initialize"
    error_message = "sandbox function names"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].architectures == tolist(["x86_64"])
    error_message = "lambda_architecture is applied"
  }

  assert {
    condition     = aws_lambda_function.this["handle-error"].environment[0].variables["NON_RETRYABLE_ERRORS"] == "InvalidTask,QuotaExceeded"
    error_message = "NON_RETRYABLE_ERRORS is comma-joined"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.executions_failed[0].alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:arc-alerts"])
    error_message = "alarms notify the SNS topic"
  }

  assert {
    condition     = length(aws_scheduler_schedule.sweeper) == 0 && length(aws_iam_role.scheduler) == 0
    error_message = "enable_schedule = false creates no schedule"
  }
}

run "adopting_existing_tables_and_bucket" {
  command   = apply
  state_key = "adopting"

  override_resource {
    target = aws_sfn_state_machine.this
    values = { arn = "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline" }
  }

  variables {
    create_tables         = false
    create_results_bucket = false
    results_bucket_name   = "existing-results"
    enable_monitoring     = false
  }

  assert {
    condition     = length(aws_dynamodb_table.runs) == 0 && length(aws_dynamodb_table.tasks) == 0 && length(aws_s3_bucket.results) == 0
    error_message = "adopting creates no table and no bucket"
  }

  assert {
    condition     = aws_lambda_function.this["aggregate"].environment[0].variables["S3_BUCKET"] == "existing-results"
    error_message = "S3_BUCKET is the existing bucket"
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 0 && length(aws_cloudwatch_metric_alarm.sweeper_errors) == 0
    error_message = "enable_monitoring = false creates no alarm and no dashboard"
  }
}

run "adopted_tasks_table_without_status_index_is_refused" {
  command = plan

  variables {
    create_tables = false
  }

  override_data {
    target = data.aws_dynamodb_table.tasks
    values = {
      hash_key               = "run_id"
      range_key              = "task_id"
      global_secondary_index = []
    }
  }

  expect_failures = [data.aws_dynamodb_table.tasks]
}

run "existing_bucket_needs_a_name" {
  command = plan

  variables {
    create_results_bucket = false
  }

  expect_failures = [data.aws_s3_bucket.existing]
}

run "bad_name_prefix" {
  command = plan

  variables {
    name_prefix = "Arc_Benchmark"
  }

  expect_failures = [var.name_prefix]
}

run "bad_architecture" {
  command = plan

  variables {
    lambda_architecture = "arm"
  }

  expect_failures = [var.lambda_architecture]
}

run "bad_job_queue_arn" {
  command = plan

  variables {
    batch_job_queue_arn = "arc-benchmark"
  }

  expect_failures = [var.batch_job_queue_arn]
}

run "bad_log_retention" {
  command = plan

  variables {
    log_retention_days = 10
  }

  expect_failures = [var.log_retention_days]
}

run "bad_non_retryable_errors" {
  command = plan

  variables {
    non_retryable_errors = ["A,B"]
  }

  expect_failures = [var.non_retryable_errors]
}
