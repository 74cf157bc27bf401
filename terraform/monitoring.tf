# Alarms (sweeper errors, sweeper not running, failed executions, permanently failed
# tasks, open circuit breakers) and a dashboard of the run metrics that `complete` and
# the sweeper publish into var.cloudwatch_namespace.

locals {
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
  ns            = var.cloudwatch_namespace
}

# handle-error logs one "failure recorded" line per failure it writes, with
# status="FAILED_PERMANENT" when it gives up on the task (a re-delivered failure logs
# "failure already recorded" instead, so each permanent failure counts once). This
# filter turns those lines into the TasksFailedPermanently metric; terms are ANDed.
resource "aws_cloudwatch_log_metric_filter" "tasks_failed_permanently" {
  count = var.enable_monitoring ? 1 : 0

  name           = "${var.name_prefix}-tasks-failed-permanently"
  log_group_name = aws_cloudwatch_log_group.function["handle-error"].name
  pattern        = "\"failure recorded\" \"FAILED_PERMANENT\""

  metric_transformation {
    name          = "TasksFailedPermanently"
    namespace     = local.ns
    value         = "1"
    default_value = "0"
  }
}

# The sweeper fails its invocation (Lambda Errors) or reports errors it survived
# (its SweepErrors metric: a run it could not re-queue, an unreadable item).
resource "aws_cloudwatch_metric_alarm" "sweeper_errors" {
  count = var.enable_monitoring ? 1 : 0

  alarm_name          = "${var.name_prefix}-sweeper-errors"
  alarm_description   = "The retry sweeper failed or reported errors: some FAILED tasks may not be retried."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  evaluation_periods  = 1
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags

  metric_query {
    id          = "sweeper_errors"
    expression  = "FILL(invocation_errors, 0) + FILL(sweep_errors, 0)"
    label       = "Sweeper invocation errors + SweepErrors"
    return_data = true
  }

  metric_query {
    id = "invocation_errors"

    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.this["sweeper"].function_name }
      stat        = "Sum"
      period      = 900
    }
  }

  metric_query {
    id = "sweep_errors"

    metric {
      namespace   = local.ns
      metric_name = "SweepErrors"
      stat        = "Sum"
      period      = 900
    }
  }
}

# The sweeper has not been invoked for two schedule intervals: the schedule was
# disabled or deleted, or the scheduler cannot assume its role or invoke the function.
# No invocation means no datapoint, hence treat_missing_data = "breaching".
locals {
  sweeper_rate = try(regex("^rate\\(([0-9]+) (minute|minutes|hour|hours|day|days)\\)$", var.sweeper_schedule_expression), null)
  sweeper_rate_unit_seconds = {
    minute = 60, minutes = 60, hour = 3600, hours = 3600, day = 86400, days = 86400
  }
  # The schedule's interval in seconds: var.sweeper_schedule_interval_seconds, else read
  # from rate(N unit), else (a cron expression) 15 minutes.
  sweeper_interval_seconds = coalesce(
    var.sweeper_schedule_interval_seconds,
    local.sweeper_rate == null ? 900 : tonumber(local.sweeper_rate[0]) * local.sweeper_rate_unit_seconds[local.sweeper_rate[1]],
  )
}

resource "aws_cloudwatch_metric_alarm" "sweeper_not_running" {
  count = var.enable_monitoring && var.enable_schedule ? 1 : 0

  alarm_name          = "${var.name_prefix}-sweeper-not-running"
  alarm_description   = "The retry sweeper has not been invoked for two schedule intervals (${local.sweeper_interval_seconds} s each): FAILED tasks are not being retried. Check the schedule ${var.name_prefix}-sweeper and its role."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = aws_lambda_function.this["sweeper"].function_name }
  statistic           = "Sum"
  period              = local.sweeper_interval_seconds
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags

  lifecycle {
    precondition {
      condition     = local.sweeper_interval_seconds % 60 == 0 && local.sweeper_interval_seconds * 2 <= 604800
      error_message = "The sweeper-not-running alarm evaluates two schedule intervals, at most 7 days: the schedule interval (${local.sweeper_interval_seconds} s) is too long; set sweeper_schedule_interval_seconds (at most 302400) or a shorter schedule."
    }
  }
}

# A config's circuit breaker is open or half-open: the sweeper has stopped retrying
# that config's tasks because its provider failures look like an outage. The sweeper
# publishes BreakersOpen (no dimensions) once per sweep, so the period is the schedule's
# interval, as for the sweeper-not-running alarm: each period holds one sweep's count,
# and the alarm stays in ALARM while a breaker stays open. No sweep, no datapoint: that
# is the sweeper-not-running alarm's to report, hence notBreaching.
resource "aws_cloudwatch_metric_alarm" "breakers_open" {
  count = var.enable_monitoring ? 1 : 0

  alarm_name          = "${var.name_prefix}-breakers-open"
  alarm_description   = "A config's circuit breaker is open or half-open: the sweeper is holding that config's retries because of repeated provider failures. Check the provider, the sweeper's log and the breakers table ${local.breakers_table_name}."
  namespace           = local.ns
  metric_name         = "BreakersOpen"
  statistic           = "Maximum"
  period              = local.sweeper_interval_seconds
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags

  lifecycle {
    precondition {
      condition     = local.sweeper_interval_seconds % 60 == 0 && local.sweeper_interval_seconds <= 604800
      error_message = "The breakers-open alarm's period is the schedule interval (${local.sweeper_interval_seconds} s), at most 7 days: set sweeper_schedule_interval_seconds or a shorter schedule."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "executions_failed" {
  count = var.enable_monitoring ? 1 : 0

  alarm_name          = "${var.name_prefix}-executions-failed"
  alarm_description   = "A pipeline execution failed, timed out or was aborted: its run may be left RUNNING until the sweeper repairs it."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  evaluation_periods  = 1
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags

  metric_query {
    id          = "ended_badly"
    expression  = "FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0)"
    label       = "Executions failed, timed out or aborted"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { failed = "ExecutionsFailed", timed_out = "ExecutionsTimedOut", aborted = "ExecutionsAborted" }

    content {
      id = metric_query.key

      metric {
        namespace   = "AWS/States"
        metric_name = metric_query.value
        dimensions  = { StateMachineArn = aws_sfn_state_machine.this.arn }
        stat        = "Sum"
        period      = 300
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "tasks_failed_permanently" {
  count = var.enable_monitoring ? 1 : 0

  alarm_name          = "${var.name_prefix}-tasks-failed-permanently"
  alarm_description   = "A task failed permanently (retries exhausted or a non-retryable error): it needs an operator."
  namespace           = local.ns
  metric_name         = "TasksFailedPermanently"
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags

  depends_on = [aws_cloudwatch_log_metric_filter.tasks_failed_permanently]
}

locals {
  # SEARCH() picks up every ConfigName without listing them here.
  per_config = "{${local.ns},ConfigName}"

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title   = "Accuracy (%) per config"
        region  = local.region
        view    = "timeSeries"
        stat    = "Average"
        period  = 3600
        metrics = [[{ expression = "SEARCH('${local.per_config} MetricName=\"Accuracy\"', 'Average', 3600)", id = "accuracy" }]]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title   = "Cost (USD) per config"
        region  = local.region
        view    = "timeSeries"
        stat    = "Sum"
        period  = 86400
        metrics = [[{ expression = "SEARCH('${local.per_config} MetricName=\"TotalCostUSD\"', 'Sum', 86400)", id = "cost" }]]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "Tasks completed / failed"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = 3600
        metrics = [
          [{ expression = "SUM(SEARCH('${local.per_config} MetricName=\"TasksCompleted\"', 'Sum', 3600))", id = "completed", label = "TasksCompleted" }],
          [{ expression = "SUM(SEARCH('${local.per_config} MetricName=\"TasksFailed\"', 'Sum', 3600))", id = "failed", label = "TasksFailed" }],
          [local.ns, "TasksFailedPermanently", { stat = "Sum", label = "TasksFailedPermanently" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title   = "Sweeper: tasks re-queued, runs retried / repaired"
        region  = local.region
        view    = "timeSeries"
        stat    = "Sum"
        period  = 900
        metrics = [for name in ["TasksRequeued", "TasksDeferred", "RunsRetried", "RunsRepaired", "SweepErrors"] : [local.ns, name]]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 24, height = 6
      properties = {
        title  = "Executions and Lambda errors"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = 300
        metrics = concat(
          [
            ["AWS/States", "ExecutionsStarted", "StateMachineArn", aws_sfn_state_machine.this.arn],
            ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", aws_sfn_state_machine.this.arn],
            ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.this.arn],
          ],
          [for name in local.function_names : ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.this[name].function_name, { label = "${name} errors" }]],
        )
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 24, height = 6
      properties = {
        title   = "Sweeper: circuit breakers open or half-open"
        region  = local.region
        view    = "timeSeries"
        stat    = "Maximum"
        period  = local.sweeper_interval_seconds
        metrics = [[local.ns, "BreakersOpen", { label = "BreakersOpen" }]]
        annotations = {
          horizontal = [{ label = "alarm", value = 1 }]
        }
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.enable_monitoring ? 1 : 0

  dashboard_name = "${var.name_prefix}-benchmarks"
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
