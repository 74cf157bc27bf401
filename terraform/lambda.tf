# The five functions, one per workspace binary, from the zips that
# scripts/build-lambdas.sh writes to <lambda_zip_dir>/<name>/bootstrap.zip.

locals {
  # docs/ARCHITECTURE.md. Every function gets the shared settings; handle-error,
  # aggregate and complete also get the retry backoff (they write a failed task's
  # next_retry_at with the same policy the sweeper applies), the sweeper its own
  # settings too. handle-error and the sweeper classify failures (failure classes),
  # the sweeper runs the per-config circuit breakers, initialize gives each run its
  # cost budget.
  common_environment = {
    RUNS_TABLE           = local.runs_table_name
    TASKS_TABLE          = local.tasks_table_name
    S3_BUCKET            = local.results_bucket_name
    MAX_RETRIES          = tostring(var.max_retries)
    CLOUDWATCH_NAMESPACE = var.cloudwatch_namespace
    NON_RETRYABLE_ERRORS = join(",", var.non_retryable_errors)
  }

  backoff_environment = {
    SWEEPER_BASE_DELAY_SECONDS = tostring(var.sweeper_base_delay_seconds)
    SWEEPER_MAX_DELAY_SECONDS  = tostring(var.sweeper_max_delay_seconds)
  }

  # Lists joined with commas (their validations keep commas out of the entries); an
  # empty list is "".
  failure_class_environment = {
    INFRA_MAX_RETRIES               = tostring(var.infra_max_retries)
    FAILURE_CLASS_INFRA_EXIT_CODES  = join(",", [for code in var.failure_class_infra_exit_codes : tostring(code)])
    FAILURE_CLASS_INFRA_PATTERNS    = join(",", var.failure_class_infra_patterns)
    FAILURE_CLASS_PROVIDER_PATTERNS = join(",", var.failure_class_provider_patterns)
  }

  sweeper_environment = merge(local.backoff_environment, local.failure_class_environment, {
    STATE_MACHINE_ARN                    = local.state_machine_arn
    SWEEPER_MAX_TASKS                    = tostring(var.sweeper_max_tasks)
    SWEEPER_MAX_AGE_HOURS                = tostring(var.sweeper_max_age_hours)
    BREAKERS_TABLE                       = local.breakers_table_name
    SWEEPER_BREAKER_MIN_FAILURES         = tostring(var.sweeper_breaker_min_failures)
    SWEEPER_BREAKER_FAILURE_RATIO        = tostring(var.sweeper_breaker_failure_ratio)
    SWEEPER_BREAKER_WINDOW_SECONDS       = tostring(var.sweeper_breaker_window_seconds)
    SWEEPER_BREAKER_COOLDOWN_SECONDS     = tostring(var.sweeper_breaker_cooldown_seconds)
    SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS = tostring(var.sweeper_breaker_max_cooldown_seconds)
    SWEEPER_BREAKER_PROBE_TASKS          = tostring(var.sweeper_breaker_probe_tasks)
  })

  # "" when run_max_cost_usd is null: no limit. Always set, so that the function's
  # environment says which it is.
  initialize_environment = {
    RUN_MAX_COST_USD = var.run_max_cost_usd == null ? "" : tostring(var.run_max_cost_usd)
  }

  function_environment = {
    for name in local.function_names : name => merge(
      local.common_environment,
      name == "sweeper" ? local.sweeper_environment : {},
      name == "initialize" ? local.initialize_environment : {},
      name == "handle-error" ? local.failure_class_environment : {},
      contains(["handle-error", "aggregate", "complete"], name) ? local.backoff_environment : {},
    )
  }

  function_zip = { for name in local.function_names : name => "${local.lambda_zip_dir}/${name}/bootstrap.zip" }
}

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.function_full_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.function_full_names

  function_name    = each.value
  description      = "arc-orchestrator ${each.key}"
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  filename         = local.function_zip[each.key]
  source_code_hash = filebase64sha256(local.function_zip[each.key])
  memory_size      = var.lambda_memory_mb
  timeout          = each.key == "sweeper" ? var.sweeper_timeout_seconds : var.lambda_timeout_seconds

  environment {
    variables = local.function_environment[each.key]
  }

  tags = local.tags

  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function,
  ]
}

# The sweeper is invoked asynchronously by the schedule. Lambda's own async retries
# (up to 2, spread over as long as 6 hours by default) would re-run a failed sweep
# long after the next scheduled one: none, and an event not delivered within 10
# minutes is dropped (the schedule invokes again every interval; the
# sweeper-not-running alarm reports a sweeper that stops running).
resource "aws_lambda_function_event_invoke_config" "sweeper" {
  function_name                = aws_lambda_function.this["sweeper"].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 600
}
