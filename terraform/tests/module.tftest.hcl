# `terraform test` of the module with a mocked AWS provider: no emulator, no
# credentials. Run from terraform/: `terraform init -backend=false && terraform test`
# (scripts/check-terraform.sh does). The real apply is the moto run of examples/local.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_region" {
    defaults = { id = "us-east-1", name = "us-east-1" }
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

  mock_resource "aws_scheduler_schedule_group" {
    defaults = { arn = "arn:aws:scheduler:us-east-1:123456789012:schedule-group/arc-benchmark" }
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

  # A distinct ARN, so that the policies can be searched for it.
  override_resource {
    target = aws_dynamodb_table.rate_limits
    values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/arc_rate_limits" }
  }

  override_resource {
    target = aws_dynamodb_table.breakers
    values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/arc-benchmark-breakers" }
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
      RUNS_TABLE                 = "arc_benchmark_runs"
      TASKS_TABLE                = "arc_task_progress"
      S3_BUCKET                  = "arc-benchmark-results-123456789012"
      MAX_RETRIES                = "3"
      CLOUDWATCH_NAMESPACE       = "ArcBenchmark"
      NON_RETRYABLE_ERRORS       = ""
      SWEEPER_BASE_DELAY_SECONDS = "300"
      SWEEPER_MAX_DELAY_SECONDS  = "21600"
    })
    error_message = "the environment of docs/ARCHITECTURE.md with its defaults"
  }

  assert {
    condition = aws_lambda_function.this["initialize"].environment[0].variables == tomap({
      RUNS_TABLE           = "arc_benchmark_runs"
      TASKS_TABLE          = "arc_task_progress"
      S3_BUCKET            = "arc-benchmark-results-123456789012"
      MAX_RETRIES          = "3"
      CLOUDWATCH_NAMESPACE = "ArcBenchmark"
      NON_RETRYABLE_ERRORS = ""
      RUN_MAX_COST_USD     = ""
    })
    error_message = "initialize gets the shared settings and RUN_MAX_COST_USD, empty (no limit) by default"
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
      "OwnLogGroup", "RunsTable", "TasksTable", "TasksStatusIndex", "BreakersTable", "StateMachine", "Executions", "CloudwatchMetrics",
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
    condition = (
      one([for st in data.aws_iam_policy_document.function["initialize"].statement : st if st.sid == "ResultsObjects"]).resources == toset(["arn:aws:s3:::arc-benchmark-results-123456789012/runs/*"]) &&
      one([for st in data.aws_iam_policy_document.function["initialize"].statement : st if st.sid == "ResultsObjects"]).actions == toset(["s3:GetObject", "s3:PutObject"])
    )
    error_message = "initialize reads task lists and writes the items object only under runs/"
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.sweeper_errors) == 1 && length(aws_cloudwatch_metric_alarm.executions_failed) == 1 && length(aws_cloudwatch_metric_alarm.tasks_failed_permanently) == 1 && length(aws_cloudwatch_metric_alarm.sweeper_errors[0].alarm_actions) == 0
    error_message = "three alarms, no actions without an SNS topic"
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.tasks_failed_permanently[0].metric_transformation[0].namespace == "ArcBenchmark"
    error_message = "the permanent-failure metric is in the namespace"
  }

  # --- environment --------------------------------------------------------------

  assert {
    condition = aws_lambda_function.this["handle-error"].environment[0].variables == tomap({
      RUNS_TABLE                      = "arc_benchmark_runs"
      TASKS_TABLE                     = "arc_task_progress"
      S3_BUCKET                       = "arc-benchmark-results-123456789012"
      MAX_RETRIES                     = "3"
      CLOUDWATCH_NAMESPACE            = "ArcBenchmark"
      NON_RETRYABLE_ERRORS            = ""
      SWEEPER_BASE_DELAY_SECONDS      = "300"
      SWEEPER_MAX_DELAY_SECONDS       = "21600"
      INFRA_MAX_RETRIES               = "5"
      FAILURE_CLASS_INFRA_EXIT_CODES  = ""
      FAILURE_CLASS_INFRA_PATTERNS    = ""
      FAILURE_CLASS_PROVIDER_PATTERNS = ""
    })
    error_message = "handle-error gets the sweeper's backoff (it computes next_retry_at with it) and the failure classes, and nothing else of the sweeper's"
  }

  assert {
    condition = {
      for k, v in aws_lambda_function.this["sweeper"].environment[0].variables : k => v
      if startswith(k, "SWEEPER_BREAKER_") || k == "BREAKERS_TABLE"
      } == {
      BREAKERS_TABLE                       = "arc-benchmark-breakers"
      SWEEPER_BREAKER_MIN_FAILURES         = "10"
      SWEEPER_BREAKER_FAILURE_RATIO        = "0.5"
      SWEEPER_BREAKER_WINDOW_SECONDS       = "1800"
      SWEEPER_BREAKER_COOLDOWN_SECONDS     = "900"
      SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS = "14400"
      SWEEPER_BREAKER_PROBE_TASKS          = "5"
    }
    error_message = "the sweeper gets BREAKERS_TABLE (<name_prefix>-breakers by default) and the six breaker settings with their defaults"
  }

  assert {
    condition = {
      for k, v in aws_lambda_function.this["sweeper"].environment[0].variables : k => v
      if k == "INFRA_MAX_RETRIES" || startswith(k, "FAILURE_CLASS_")
      } == {
      INFRA_MAX_RETRIES               = "5"
      FAILURE_CLASS_INFRA_EXIT_CODES  = ""
      FAILURE_CLASS_INFRA_PATTERNS    = ""
      FAILURE_CLASS_PROVIDER_PATTERNS = ""
    }
    error_message = "the sweeper gets the same failure classes as handle-error"
  }

  assert {
    condition = alltrue([for name in ["initialize", "handle-error", "aggregate", "complete"] :
      length([for k in keys(aws_lambda_function.this[name].environment[0].variables) : k if k == "BREAKERS_TABLE" || startswith(k, "SWEEPER_BREAKER_")]) == 0
    ])
    error_message = "only the sweeper gets the breakers table and the breaker settings"
  }

  assert {
    condition = alltrue([for name in ["initialize", "aggregate", "complete"] :
      length([for k in keys(aws_lambda_function.this[name].environment[0].variables) : k if k == "INFRA_MAX_RETRIES" || startswith(k, "FAILURE_CLASS_")]) == 0
    ])
    error_message = "only handle-error and the sweeper classify failures"
  }

  assert {
    condition = alltrue([for name in ["handle-error", "aggregate", "complete", "sweeper"] :
      !contains(keys(aws_lambda_function.this[name].environment[0].variables), "RUN_MAX_COST_USD")
    ])
    error_message = "only initialize gets RUN_MAX_COST_USD"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].environment[0].variables["SWEEPER_MAX_AGE_HOURS"] == "72"
    error_message = "SWEEPER_MAX_AGE_HOURS defaults to 72"
  }

  assert {
    condition     = length(setintersection(keys(aws_lambda_function.this["initialize"].environment[0].variables), ["SWEEPER_BASE_DELAY_SECONDS", "SWEEPER_MAX_DELAY_SECONDS", "SWEEPER_MAX_AGE_HOURS", "SWEEPER_MAX_TASKS"])) == 0
    error_message = "initialize gets no sweeper settings"
  }

  assert {
    condition = alltrue([for name in ["aggregate", "complete"] :
      aws_lambda_function.this[name].environment[0].variables["SWEEPER_BASE_DELAY_SECONDS"] == "300" &&
      length(setintersection(keys(aws_lambda_function.this[name].environment[0].variables), ["SWEEPER_MAX_AGE_HOURS", "SWEEPER_MAX_TASKS", "STATE_MACHINE_ARN"])) == 0
    ])
    error_message = "aggregate and complete settle in-flight tasks with the sweeper's backoff, and get nothing else of the sweeper's"
  }

  # --- the sweeper's invocation ---------------------------------------------------

  assert {
    condition     = aws_lambda_function_event_invoke_config.sweeper.function_name == "arc-benchmark-sweeper" && aws_lambda_function_event_invoke_config.sweeper.maximum_retry_attempts == 0 && aws_lambda_function_event_invoke_config.sweeper.maximum_event_age_in_seconds <= 900
    error_message = "Lambda never retries a failed sweep on its own, and drops an event older than 15 minutes"
  }

  assert {
    condition     = aws_scheduler_schedule.sweeper[0].group_name == "arc-benchmark" && aws_scheduler_schedule_group.this[0].name == "arc-benchmark"
    error_message = "the schedule is in the module's own group"
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].namespace == "AWS/Lambda" &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].metric_name == "Invocations" &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].dimensions == tomap({ FunctionName = "arc-benchmark-sweeper" }) &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].period == 900 &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].evaluation_periods == 2 &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].comparison_operator == "LessThanThreshold" &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].threshold == 1 &&
      aws_cloudwatch_metric_alarm.sweeper_not_running[0].treat_missing_data == "breaching"
    )
    error_message = "the sweeper-not-running alarm: no Invocations of the sweeper in two 15-minute periods, missing data breaching"
  }

  assert {
    condition     = one([for q in aws_cloudwatch_metric_alarm.executions_failed[0].metric_query : q.expression if q.id == "ended_badly"]) == "FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0)"
    error_message = "each operand of the executions-failed expression is FILLed with 0"
  }

  # --- the state machine ------------------------------------------------------------

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).TimeoutSeconds == 259200
    error_message = "execution_timeout_seconds is the execution's TimeoutSeconds"
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ItemProcessor.ProcessorConfig == { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" }
    error_message = "ProcessTasks is a Distributed Map of Standard child executions"
  }

  assert {
    condition = jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ItemReader == {
      Resource     = "arn:aws:states:::s3:getObject"
      ReaderConfig = { InputType = "JSON" }
      Parameters   = { "Bucket.$" = "$.items.bucket", "Key.$" = "$.items.key" }
    }
    error_message = "the Map reads the task ids from the items object Initialize returns"
  }

  assert {
    condition = (
      jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ToleratedFailurePercentage == 100 &&
      jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ResultPath == null &&
      jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ResultWriter.Parameters == { Bucket = "arc-benchmark-results-123456789012", Prefix = "map-results" }
    )
    error_message = "task failures never fail the map; child results go to the results bucket, not into the state"
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ItemProcessor.States.RunBatchJob.TimeoutSeconds == 21600
    error_message = "batch_task_timeout_seconds bounds each Batch job"
  }

  assert {
    condition = alltrue([for name in ["Initialize", "InitializeRetry"] :
      keys(jsondecode(aws_sfn_state_machine.this.definition).States[name].ResultSelector) == ["config_name.$", "items.$", "run_id.$", "total_tasks.$"]
    ])
    error_message = "Initialize and InitializeRetry keep only run_id, config_name, total_tasks and items"
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.ProcessTasks.ItemProcessor.States.HandleError.Catch[0].Next == "HandleErrorFailed"
    error_message = "a failed HandleError never fails the map"
  }

  assert {
    condition     = one([for st in data.aws_iam_policy_document.state_machine.statement : st if st.sid == "StartMapChildExecutions"]).resources == toset(["arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline"])
    error_message = "the Distributed Map starts child executions of this state machine only"
  }

  assert {
    condition = (
      one([for st in data.aws_iam_policy_document.state_machine.statement : st if st.sid == "ReadMapItems"]).resources == toset(["arn:aws:s3:::arc-benchmark-results-123456789012/runs/*"]) &&
      one([for st in data.aws_iam_policy_document.state_machine.statement : st if st.sid == "WriteMapResults"]).resources == toset(["arn:aws:s3:::arc-benchmark-results-123456789012/map-results/*"])
    )
    error_message = "the state machine reads items under runs/ and writes Map results under map-results/ only"
  }

  # --- IAM roles --------------------------------------------------------------------

  assert {
    condition = alltrue([for role in concat(values(aws_iam_role.function), [aws_iam_role.state_machine], aws_iam_role.scheduler) :
      role.path == "/" && role.permissions_boundary == null
    ])
    error_message = "by default every role has the path / and no permissions boundary"
  }

  assert {
    condition = toset([for c in data.aws_iam_policy_document.states_assume.statement[0].condition : jsonencode([c.test, c.variable, sort(c.values)])]) == toset([
      jsonencode(["StringEquals", "aws:SourceAccount", ["123456789012"]]),
      jsonencode(["ArnLike", "aws:SourceArn", sort([
        "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline",
        "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline/*",
        "arn:aws:states:us-east-1:123456789012:mapRun:arc-benchmark-pipeline/*",
      ])]),
    ])
    error_message = "only this state machine (and its Distributed Map children) may assume its role"
  }

  assert {
    condition = toset([for c in data.aws_iam_policy_document.scheduler_assume.statement[0].condition : jsonencode([c.test, c.variable, sort(c.values)])]) == toset([
      jsonencode(["StringEquals", "aws:SourceAccount", ["123456789012"]]),
      jsonencode(["ArnLike", "aws:SourceArn", sort(["arn:aws:scheduler:us-east-1:123456789012:schedule-group/arc-benchmark", "arn:aws:scheduler:us-east-1:123456789012:schedule/arc-benchmark/*"])]),
    ])
    error_message = "only the module's schedule group may assume the scheduler role"
  }

  # --- the rate limits table ----------------------------------------------------------

  assert {
    condition = (
      aws_dynamodb_table.rate_limits[0].name == "arc_rate_limits" &&
      aws_dynamodb_table.rate_limits[0].hash_key == "provider" &&
      aws_dynamodb_table.rate_limits[0].range_key == null &&
      aws_dynamodb_table.rate_limits[0].billing_mode == "PAY_PER_REQUEST" &&
      aws_dynamodb_table.rate_limits[0].point_in_time_recovery[0].enabled &&
      aws_dynamodb_table.rate_limits[0].server_side_encryption[0].enabled &&
      aws_dynamodb_table.rate_limits[0].deletion_protection_enabled
    )
    error_message = "rate limits table: arc_rate_limits, hash key provider, on-demand, PITR, SSE, deletion protection"
  }

  assert {
    condition     = output.rate_limits_table_name == "arc_rate_limits" && output.runs_table_name == "arc_benchmark_runs" && output.tasks_table_name == "arc_task_progress"
    error_message = "the table outputs name the created tables"
  }

  assert {
    condition = alltrue(flatten([for doc in concat(values(data.aws_iam_policy_document.function), [data.aws_iam_policy_document.state_machine, data.aws_iam_policy_document.scheduler]) :
      [for st in doc.statement : [for r in st.resources : !strcontains(r, "arc_rate_limits")]]
    ]))
    error_message = "no function (nor the state machine or scheduler) is granted access to the rate limits table"
  }

  # --- the breakers table --------------------------------------------------------------

  assert {
    condition = (
      aws_dynamodb_table.breakers[0].name == "arc-benchmark-breakers" &&
      aws_dynamodb_table.breakers[0].hash_key == "config_name" &&
      aws_dynamodb_table.breakers[0].range_key == null &&
      [for a in aws_dynamodb_table.breakers[0].attribute : [a.name, a.type]] == [["config_name", "S"]] &&
      length(aws_dynamodb_table.breakers[0].global_secondary_index) == 0 &&
      aws_dynamodb_table.breakers[0].billing_mode == "PAY_PER_REQUEST" &&
      aws_dynamodb_table.breakers[0].point_in_time_recovery[0].enabled &&
      aws_dynamodb_table.breakers[0].server_side_encryption[0].enabled &&
      aws_dynamodb_table.breakers[0].deletion_protection_enabled
    )
    error_message = "breakers table: <name_prefix>-breakers, hash key config_name only, no GSI, on-demand, PITR, SSE, deletion protection"
  }

  assert {
    condition     = output.breakers_table_name == "arc-benchmark-breakers" && output.breakers_table_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/arc-benchmark-breakers"
    error_message = "the breakers table outputs"
  }

  assert {
    condition = (
      one([for st in data.aws_iam_policy_document.function["sweeper"].statement : st if st.sid == "BreakersTable"]).resources == toset(["arn:aws:dynamodb:us-east-1:123456789012:table/arc-benchmark-breakers"]) &&
      one([for st in data.aws_iam_policy_document.function["sweeper"].statement : st if st.sid == "BreakersTable"]).actions == toset(["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"])
    )
    error_message = "the sweeper may GetItem, Scan and UpdateItem the breakers table, nothing else"
  }

  assert {
    condition = alltrue(flatten([for name, doc in data.aws_iam_policy_document.function :
      [for st in doc.statement : [for r in st.resources : !strcontains(r, "arc-benchmark-breakers")]]
      if name != "sweeper"
    ]))
    error_message = "no function but the sweeper is granted access to the breakers table"
  }

  # --- the breakers-open alarm -----------------------------------------------------------

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.breakers_open[0].alarm_name == "arc-benchmark-breakers-open" &&
      aws_cloudwatch_metric_alarm.breakers_open[0].namespace == "ArcBenchmark" &&
      aws_cloudwatch_metric_alarm.breakers_open[0].metric_name == "BreakersOpen" &&
      aws_cloudwatch_metric_alarm.breakers_open[0].dimensions == null &&
      aws_cloudwatch_metric_alarm.breakers_open[0].statistic == "Maximum" &&
      aws_cloudwatch_metric_alarm.breakers_open[0].period == 900 &&
      aws_cloudwatch_metric_alarm.breakers_open[0].evaluation_periods == 1 &&
      aws_cloudwatch_metric_alarm.breakers_open[0].comparison_operator == "GreaterThanOrEqualToThreshold" &&
      aws_cloudwatch_metric_alarm.breakers_open[0].threshold == 1 &&
      aws_cloudwatch_metric_alarm.breakers_open[0].treat_missing_data == "notBreaching" &&
      length(aws_cloudwatch_metric_alarm.breakers_open[0].alarm_actions) == 0
    )
    error_message = "the breakers-open alarm: Maximum of BreakersOpen >= 1 over one schedule interval, missing data not breaching"
  }

  assert {
    condition     = contains(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [for m in try(w.properties.metrics, []) : try(m[1], "")]]), "BreakersOpen")
    error_message = "the dashboard shows BreakersOpen"
  }
}

run "sandbox_names_and_options" {
  command   = apply
  state_key = "sandbox"

  override_resource {
    target = aws_sfn_state_machine.this
    values = { arn = "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-sandbox-teal-pipeline" }
  }

  variables {
    name_prefix                = "arc-benchmark-sandbox-teal"
    lambda_architecture        = "x86_64"
    non_retryable_errors       = ["InvalidTask", "QuotaExceeded"]
    alarm_sns_topic_arn        = "arn:aws:sns:us-east-1:123456789012:arc-alerts"
    enable_schedule            = false
    sweeper_base_delay_seconds = 60
    sweeper_max_delay_seconds  = 3600
    sweeper_max_age_hours      = 24
    map_max_concurrency        = 10000
    batch_task_timeout_seconds = 3600
    execution_timeout_seconds  = 86400

    breakers_table_name                  = "arc_breakers_sandbox_teal"
    sweeper_breaker_min_failures         = 3
    sweeper_breaker_failure_ratio        = 0.25
    sweeper_breaker_window_seconds       = 600
    sweeper_breaker_cooldown_seconds     = 300
    sweeper_breaker_max_cooldown_seconds = 300
    sweeper_breaker_probe_tasks          = 1
    infra_max_retries                    = 0
    failure_class_infra_exit_codes       = [137, 143]
    failure_class_infra_patterns         = ["Host EC2 (instance i-0abc) terminated.", "CannotPullContainerError"]
    failure_class_provider_patterns      = ["429 Too Many Requests", "overloaded_error"]
    run_max_cost_usd                     = 12.5
  }

  assert {
    condition = {
      for k, v in aws_lambda_function.this["sweeper"].environment[0].variables : k => v
      if startswith(k, "SWEEPER_BREAKER_") || k == "BREAKERS_TABLE"
      } == {
      BREAKERS_TABLE                       = "arc_breakers_sandbox_teal"
      SWEEPER_BREAKER_MIN_FAILURES         = "3"
      SWEEPER_BREAKER_FAILURE_RATIO        = "0.25"
      SWEEPER_BREAKER_WINDOW_SECONDS       = "600"
      SWEEPER_BREAKER_COOLDOWN_SECONDS     = "300"
      SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS = "300"
      SWEEPER_BREAKER_PROBE_TASKS          = "1"
    }
    error_message = "breakers_table_name and the breaker settings are rendered (max cooldown may equal the cooldown)"
  }

  assert {
    condition = alltrue([for name in ["handle-error", "sweeper"] :
      aws_lambda_function.this[name].environment[0].variables["INFRA_MAX_RETRIES"] == "0" &&
      aws_lambda_function.this[name].environment[0].variables["FAILURE_CLASS_INFRA_EXIT_CODES"] == "137,143" &&
      aws_lambda_function.this[name].environment[0].variables["FAILURE_CLASS_INFRA_PATTERNS"] == "Host EC2 (instance i-0abc) terminated.,CannotPullContainerError" &&
      aws_lambda_function.this[name].environment[0].variables["FAILURE_CLASS_PROVIDER_PATTERNS"] == "429 Too Many Requests,overloaded_error"
    ])
    error_message = "the failure classes are comma-joined into handle-error's and the sweeper's environment"
  }

  assert {
    condition     = aws_lambda_function.this["initialize"].environment[0].variables["RUN_MAX_COST_USD"] == "12.5"
    error_message = "RUN_MAX_COST_USD comes from run_max_cost_usd"
  }

  assert {
    condition     = aws_dynamodb_table.breakers[0].name == "arc_breakers_sandbox_teal" && output.breakers_table_name == "arc_breakers_sandbox_teal"
    error_message = "breakers_table_name names the table"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.breakers_open[0].alarm_name == "arc-benchmark-sandbox-teal-breakers-open" && aws_cloudwatch_metric_alarm.breakers_open[0].alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:arc-alerts"])
    error_message = "the breakers-open alarm is per deployment and notifies the SNS topic"
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
    condition = alltrue([for name in ["handle-error", "aggregate", "complete", "sweeper"] :
      aws_lambda_function.this[name].environment[0].variables["SWEEPER_BASE_DELAY_SECONDS"] == "60" &&
      aws_lambda_function.this[name].environment[0].variables["SWEEPER_MAX_DELAY_SECONDS"] == "3600"
    ])
    error_message = "handle-error, aggregate, complete and the sweeper share the backoff settings"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].environment[0].variables["SWEEPER_MAX_AGE_HOURS"] == "24"
    error_message = "SWEEPER_MAX_AGE_HOURS comes from sweeper_max_age_hours"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.executions_failed[0].alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:arc-alerts"])
    error_message = "alarms notify the SNS topic"
  }

  assert {
    condition     = length(aws_scheduler_schedule.sweeper) == 0 && length(aws_scheduler_schedule_group.this) == 0 && length(aws_iam_role.scheduler) == 0
    error_message = "enable_schedule = false creates no schedule"
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.sweeper_not_running) == 0 && length(aws_cloudwatch_metric_alarm.sweeper_errors) == 1
    error_message = "no sweeper-not-running alarm without a schedule"
  }

  assert {
    condition = (
      jsondecode(local.state_machine_definition).States.ProcessTasks.MaxConcurrency == 10000 &&
      jsondecode(local.state_machine_definition).States.ProcessTasks.ItemProcessor.States.RunBatchJob.TimeoutSeconds == 3600 &&
      jsondecode(local.state_machine_definition).TimeoutSeconds == 86400
    )
    error_message = "map_max_concurrency, batch_task_timeout_seconds and execution_timeout_seconds are rendered"
  }
}

run "role_path_and_permissions_boundary" {
  command   = plan
  state_key = "platform"

  variables {
    role_path                 = "/platform/arc/"
    role_permissions_boundary = "arn:aws:iam::123456789012:policy/platform-boundary"
  }

  assert {
    condition     = length(aws_iam_role.function) == 5 && length(aws_iam_role.scheduler) == 1
    error_message = "five function roles, the state machine's and the scheduler's"
  }

  assert {
    condition = alltrue([for role in concat(values(aws_iam_role.function), [aws_iam_role.state_machine], aws_iam_role.scheduler) :
      role.path == "/platform/arc/" && role.permissions_boundary == "arn:aws:iam::123456789012:policy/platform-boundary"
    ])
    error_message = "role_path and role_permissions_boundary are applied to every role the module creates"
  }
}

run "sweeper_alarm_period_follows_the_schedule" {
  command   = plan
  state_key = "hourly"

  variables {
    sweeper_schedule_expression = "rate(2 hours)"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.sweeper_not_running[0].period == 7200 && aws_cloudwatch_metric_alarm.sweeper_not_running[0].evaluation_periods == 2
    error_message = "the period is the rate() interval"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.breakers_open[0].period == 7200 && aws_cloudwatch_metric_alarm.breakers_open[0].evaluation_periods == 1
    error_message = "the breakers-open alarm evaluates one schedule interval: one sweep's BreakersOpen"
  }
}

run "sweeper_alarm_period_of_a_cron_schedule" {
  command   = plan
  state_key = "cron"

  variables {
    sweeper_schedule_expression = "cron(0/10 * * * ? *)"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.sweeper_not_running[0].period == 900
    error_message = "a cron() schedule falls back to 15 minutes"
  }
}

run "sweeper_alarm_period_override" {
  command   = plan
  state_key = "cron_override"

  variables {
    sweeper_schedule_expression       = "cron(0 * * * ? *)"
    sweeper_schedule_interval_seconds = 3600
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.sweeper_not_running[0].period == 3600
    error_message = "sweeper_schedule_interval_seconds overrides the interval"
  }
}

run "sweeper_alarm_refuses_an_interval_beyond_its_range" {
  command = plan

  variables {
    sweeper_schedule_expression = "rate(4 days)"
  }

  expect_failures = [aws_cloudwatch_metric_alarm.sweeper_not_running]
}

run "adopting_existing_tables_and_bucket" {
  command   = apply
  state_key = "adopting"

  override_resource {
    target = aws_sfn_state_machine.this
    values = { arn = "arn:aws:states:us-east-1:123456789012:stateMachine:arc-benchmark-pipeline" }
  }

  override_data {
    target = data.aws_dynamodb_table.runs
    values = {
      name      = "arc_benchmark_runs"
      hash_key  = "run_id"
      range_key = null
      arn       = "arn:aws:dynamodb:us-east-1:123456789012:table/arc_benchmark_runs"
      global_secondary_index = [
        { name = "config-created-index", hash_key = "config_name", range_key = "created_at", projection_type = "ALL" },
      ]
    }
  }

  override_data {
    target = data.aws_dynamodb_table.tasks
    values = {
      name      = "arc_task_progress"
      hash_key  = "run_id"
      range_key = "task_id"
      arn       = "arn:aws:dynamodb:us-east-1:123456789012:table/arc_task_progress"
      # INCLUDE carrying what the sweeper reads is as good as ALL.
      global_secondary_index = [
        { name = "status-index", hash_key = "status", range_key = "updated_at", projection_type = "INCLUDE", non_key_attributes = ["retry_count", "last_error_at", "retry_execution"] },
      ]
    }
  }

  override_data {
    target = data.aws_dynamodb_table.rate_limits
    values = {
      name     = "arc_rate_limits"
      hash_key = "provider"
      arn      = "arn:aws:dynamodb:us-east-1:123456789012:table/arc_rate_limits"
    }
  }

  override_data {
    target = data.aws_dynamodb_table.breakers
    values = {
      name      = "arc_breakers"
      hash_key  = "config_name"
      range_key = null
      arn       = "arn:aws:dynamodb:us-east-1:123456789012:table/arc_breakers"
    }
  }

  variables {
    create_tables            = false
    create_breakers_table    = false
    breakers_table_name      = "arc_breakers"
    create_rate_limits_table = false
    create_results_bucket    = false
    results_bucket_name      = "existing-results"
    enable_monitoring        = false
  }

  assert {
    condition     = length(aws_dynamodb_table.runs) == 0 && length(aws_dynamodb_table.tasks) == 0 && length(aws_dynamodb_table.breakers) == 0 && length(aws_dynamodb_table.rate_limits) == 0 && length(aws_s3_bucket.results) == 0
    error_message = "adopting creates no table and no bucket"
  }

  assert {
    condition = (
      output.breakers_table_name == "arc_breakers" &&
      output.breakers_table_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/arc_breakers" &&
      aws_lambda_function.this["sweeper"].environment[0].variables["BREAKERS_TABLE"] == "arc_breakers" &&
      one([for st in data.aws_iam_policy_document.function["sweeper"].statement : st if st.sid == "BreakersTable"]).resources == toset(["arn:aws:dynamodb:us-east-1:123456789012:table/arc_breakers"])
    )
    error_message = "the sweeper uses, and is granted, the adopted breakers table"
  }

  assert {
    condition     = aws_lambda_function.this["aggregate"].environment[0].variables["S3_BUCKET"] == "existing-results"
    error_message = "S3_BUCKET is the existing bucket"
  }

  assert {
    condition     = output.runs_table_name == "arc_benchmark_runs" && output.tasks_table_name == "arc_task_progress" && output.rate_limits_table_name == "arc_rate_limits"
    error_message = "the table outputs name the adopted tables"
  }

  assert {
    condition     = output.runs_table_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/arc_benchmark_runs" && output.tasks_table_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/arc_task_progress"
    error_message = "the table ARNs are the adopted tables'"
  }

  assert {
    condition = alltrue(flatten([for doc in concat(values(data.aws_iam_policy_document.function), [data.aws_iam_policy_document.state_machine]) :
      [for st in doc.statement : [for r in st.resources : !strcontains(r, "arc_rate_limits")]]
    ]))
    error_message = "no function is granted access to the adopted rate limits table"
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 0 && length(aws_cloudwatch_metric_alarm.sweeper_errors) == 0 && length(aws_cloudwatch_metric_alarm.sweeper_not_running) == 0 && length(aws_cloudwatch_metric_alarm.breakers_open) == 0
    error_message = "enable_monitoring = false creates no alarm and no dashboard"
  }
}

# An installation of the Python handler set has runs and tasks tables but no breakers
# table: adopting them (create_tables = false) still creates the breakers table.
run "adopting_python_tables_creates_the_breakers_table" {
  command   = plan
  state_key = "adopting_python"

  override_data {
    target = data.aws_dynamodb_table.runs
    values = {
      hash_key               = "run_id"
      range_key              = null
      global_secondary_index = [{ name = "config-created-index", hash_key = "config_name", range_key = "created_at", projection_type = "ALL" }]
    }
  }

  variables {
    create_tables = false
  }

  assert {
    condition     = length(aws_dynamodb_table.runs) == 0 && length(aws_dynamodb_table.tasks) == 0 && length(aws_dynamodb_table.breakers) == 1 && length(data.aws_dynamodb_table.breakers) == 0
    error_message = "create_tables = false adopts the runs and tasks tables and still creates the breakers table"
  }

  assert {
    condition     = aws_lambda_function.this["sweeper"].environment[0].variables["BREAKERS_TABLE"] == "arc-benchmark-breakers"
    error_message = "the sweeper uses the created breakers table"
  }
}

# --- adoption refused --------------------------------------------------------------

run "adopted_breakers_table_with_other_keys_is_refused" {
  command = plan

  variables {
    create_breakers_table = false
  }

  override_data {
    target = data.aws_dynamodb_table.breakers
    values = { hash_key = "config_name", range_key = "run_id" }
  }

  expect_failures = [data.aws_dynamodb_table.breakers]
}

run "adopted_tasks_table_without_status_index_is_refused" {
  command = plan

  variables {
    create_tables = false
  }

  override_data {
    target = data.aws_dynamodb_table.runs
    values = {
      hash_key               = "run_id"
      range_key              = null
      global_secondary_index = [{ name = "config-created-index", hash_key = "config_name", range_key = "created_at", projection_type = "ALL" }]
    }
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

run "adopted_status_index_with_other_keys_is_refused" {
  command = plan

  variables {
    create_tables = false
  }

  override_data {
    target = data.aws_dynamodb_table.runs
    values = {
      hash_key               = "run_id"
      range_key              = null
      global_secondary_index = [{ name = "config-created-index", hash_key = "config_name", range_key = "created_at", projection_type = "ALL" }]
    }
  }

  override_data {
    target = data.aws_dynamodb_table.tasks
    values = {
      hash_key               = "run_id"
      range_key              = "task_id"
      global_secondary_index = [{ name = "status-index", hash_key = "status", range_key = "created_at", projection_type = "ALL" }]
    }
  }

  expect_failures = [data.aws_dynamodb_table.tasks]
}

run "adopted_status_index_without_the_sweeper_attributes_is_refused" {
  command = plan

  variables {
    create_tables = false
  }

  override_data {
    target = data.aws_dynamodb_table.runs
    values = {
      hash_key               = "run_id"
      range_key              = null
      global_secondary_index = [{ name = "config-created-index", hash_key = "config_name", range_key = "created_at", projection_type = "ALL" }]
    }
  }

  override_data {
    target = data.aws_dynamodb_table.tasks
    values = {
      hash_key               = "run_id"
      range_key              = "task_id"
      global_secondary_index = [{ name = "status-index", hash_key = "status", range_key = "updated_at", projection_type = "KEYS_ONLY" }]
    }
  }

  expect_failures = [data.aws_dynamodb_table.tasks]
}

run "adopted_config_index_with_other_keys_is_refused" {
  command = plan

  variables {
    create_tables = false
  }

  override_data {
    target = data.aws_dynamodb_table.runs
    values = {
      hash_key               = "run_id"
      range_key              = null
      global_secondary_index = [{ name = "config-created-index", hash_key = "config_name", range_key = "updated_at", projection_type = "ALL" }]
    }
  }

  expect_failures = [data.aws_dynamodb_table.runs]
}

run "adopted_rate_limits_table_with_other_keys_is_refused" {
  command = plan

  variables {
    create_rate_limits_table = false
  }

  override_data {
    target = data.aws_dynamodb_table.rate_limits
    values = { hash_key = "name" }
  }

  expect_failures = [data.aws_dynamodb_table.rate_limits]
}

run "existing_bucket_needs_a_name" {
  command = plan

  variables {
    create_results_bucket = false
  }

  expect_failures = [data.aws_s3_bucket.existing]
}

# --- variable validation ------------------------------------------------------------

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

run "map_max_concurrency_above_a_distributed_map" {
  command = plan

  variables {
    map_max_concurrency = 10001
  }

  expect_failures = [var.map_max_concurrency]
}

run "map_max_concurrency_zero" {
  command = plan

  variables {
    map_max_concurrency = 0
  }

  expect_failures = [var.map_max_concurrency]
}

run "batch_task_timeout_too_short" {
  command = plan

  variables {
    batch_task_timeout_seconds = 59
  }

  expect_failures = [var.batch_task_timeout_seconds]
}

run "batch_task_timeout_too_long" {
  command = plan

  variables {
    batch_task_timeout_seconds = 604801
    execution_timeout_seconds  = 31536000
  }

  expect_failures = [var.batch_task_timeout_seconds]
}

run "execution_timeout_too_short" {
  command = plan

  variables {
    batch_task_timeout_seconds = 60
    execution_timeout_seconds  = 3599
  }

  expect_failures = [var.execution_timeout_seconds]
}

run "execution_timeout_above_a_year" {
  command = plan

  variables {
    execution_timeout_seconds = 31536001
  }

  expect_failures = [var.execution_timeout_seconds]
}

run "execution_timeout_not_above_the_task_timeout" {
  command = plan

  variables {
    batch_task_timeout_seconds = 86400
    execution_timeout_seconds  = 86400
  }

  expect_failures = [var.execution_timeout_seconds]
}

run "sweeper_max_age_hours_zero" {
  command = plan

  variables {
    sweeper_max_age_hours = 0
  }

  expect_failures = [var.sweeper_max_age_hours]
}

run "sweeper_max_age_hours_above_a_year" {
  command = plan

  variables {
    sweeper_max_age_hours = 8761
  }

  expect_failures = [var.sweeper_max_age_hours]
}

run "sweeper_base_delay_zero" {
  command = plan

  variables {
    sweeper_base_delay_seconds = 0
  }

  expect_failures = [var.sweeper_base_delay_seconds]
}

run "sweeper_max_delay_below_the_base_delay" {
  command = plan

  variables {
    sweeper_base_delay_seconds = 600
    sweeper_max_delay_seconds  = 60
  }

  expect_failures = [var.sweeper_max_delay_seconds]
}

run "sweeper_max_tasks_above_what_the_sweeper_accepts" {
  command = plan

  variables {
    sweeper_max_tasks = 100001
  }

  expect_failures = [var.sweeper_max_tasks]
}

run "sweeper_schedule_interval_not_whole_minutes" {
  command = plan

  variables {
    sweeper_schedule_interval_seconds = 90
  }

  expect_failures = [var.sweeper_schedule_interval_seconds]
}

run "sweeper_schedule_interval_too_long" {
  command = plan

  variables {
    sweeper_schedule_interval_seconds = 302460
  }

  expect_failures = [var.sweeper_schedule_interval_seconds]
}

run "role_path_without_slashes" {
  command = plan

  variables {
    role_path = "platform"
  }

  expect_failures = [var.role_path]
}

run "role_path_with_an_empty_segment" {
  command = plan

  variables {
    role_path = "/platform//arc/"
  }

  expect_failures = [var.role_path]
}

run "role_permissions_boundary_not_a_policy_arn" {
  command = plan

  variables {
    role_permissions_boundary = "arn:aws:iam::123456789012:role/boundary"
  }

  expect_failures = [var.role_permissions_boundary]
}

run "bad_rate_limits_table_name" {
  command = plan

  variables {
    rate_limits_table_name = "ab"
  }

  expect_failures = [var.rate_limits_table_name]
}

run "bad_breakers_table_name" {
  command = plan

  variables {
    breakers_table_name = "a b"
  }

  expect_failures = [var.breakers_table_name]
}

run "breaker_failure_ratio_zero" {
  command = plan

  variables {
    sweeper_breaker_failure_ratio = 0
  }

  expect_failures = [var.sweeper_breaker_failure_ratio]
}

run "breaker_failure_ratio_above_one" {
  command = plan

  variables {
    sweeper_breaker_failure_ratio = 1.5
  }

  expect_failures = [var.sweeper_breaker_failure_ratio]
}

run "breaker_min_failures_zero" {
  command = plan

  variables {
    sweeper_breaker_min_failures = 0
  }

  expect_failures = [var.sweeper_breaker_min_failures]
}

run "breaker_window_below_a_minute" {
  command = plan

  variables {
    sweeper_breaker_window_seconds = 59
  }

  expect_failures = [var.sweeper_breaker_window_seconds]
}

run "breaker_probe_tasks_zero" {
  command = plan

  variables {
    sweeper_breaker_probe_tasks = 0
  }

  expect_failures = [var.sweeper_breaker_probe_tasks]
}

run "breaker_probe_tasks_above_100" {
  command = plan

  variables {
    sweeper_breaker_probe_tasks = 101
  }

  expect_failures = [var.sweeper_breaker_probe_tasks]
}

run "breaker_max_cooldown_below_the_cooldown" {
  command = plan

  variables {
    sweeper_breaker_cooldown_seconds     = 3600
    sweeper_breaker_max_cooldown_seconds = 1800
  }

  expect_failures = [var.sweeper_breaker_max_cooldown_seconds]
}

run "breaker_max_cooldown_above_a_week" {
  command = plan

  variables {
    sweeper_breaker_max_cooldown_seconds = 604801
  }

  expect_failures = [var.sweeper_breaker_max_cooldown_seconds]
}

run "infra_max_retries_negative" {
  command = plan

  variables {
    infra_max_retries = -1
  }

  expect_failures = [var.infra_max_retries]
}

run "infra_exit_code_not_whole" {
  command = plan

  variables {
    failure_class_infra_exit_codes = [1.5]
  }

  expect_failures = [var.failure_class_infra_exit_codes]
}

run "infra_pattern_with_a_comma" {
  command = plan

  variables {
    failure_class_infra_patterns = ["Host EC2, terminated"]
  }

  expect_failures = [var.failure_class_infra_patterns]
}

run "provider_pattern_with_a_comma" {
  command = plan

  variables {
    failure_class_provider_patterns = ["rate limit,429"]
  }

  expect_failures = [var.failure_class_provider_patterns]
}

run "provider_pattern_empty" {
  command = plan

  variables {
    failure_class_provider_patterns = [""]
  }

  expect_failures = [var.failure_class_provider_patterns]
}

run "run_max_cost_zero" {
  command = plan

  variables {
    run_max_cost_usd = 0
  }

  expect_failures = [var.run_max_cost_usd]
}
