# EventBridge Scheduler invokes the sweeper (default every 15 minutes), from a schedule
# group of its own so that the scheduler role's trust policy can name it.

resource "aws_scheduler_schedule_group" "this" {
  count = var.enable_schedule ? 1 : 0

  name = local.schedule_group_name
  tags = local.tags

  lifecycle {
    postcondition {
      condition     = self.arn == local.schedule_group_arn
      error_message = "The schedule group ARN differs from the one computed for the scheduler role's trust policy."
    }
  }
}

resource "aws_scheduler_schedule" "sweeper" {
  count = var.enable_schedule ? 1 : 0

  name        = "${var.name_prefix}-sweeper"
  group_name  = aws_scheduler_schedule_group.this[0].name
  description = "arc-orchestrator: retry FAILED tasks that are due"

  schedule_expression = var.sweeper_schedule_expression

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["sweeper"].arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = jsonencode({})

    # This policy governs only the scheduler's delivery of the event to Lambda (the
    # asynchronous Invoke call): retried briefly when Lambda refuses or throttles it,
    # then dropped. Once Lambda has accepted the event, a failed sweep is subject to
    # Lambda's own async retries, a separate layer set to 0 in lambda.tf
    # (aws_lambda_function_event_invoke_config.sweeper): a sweep is idempotent and the
    # next one comes one interval later.
    retry_policy {
      maximum_event_age_in_seconds = 600
      maximum_retry_attempts       = 2
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}
