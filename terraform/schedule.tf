# EventBridge Scheduler invokes the sweeper (default every 15 minutes).

resource "aws_scheduler_schedule" "sweeper" {
  count = var.enable_schedule ? 1 : 0

  name        = "${var.name_prefix}-sweeper"
  description = "arc-orchestrator: retry FAILED tasks that are due"

  schedule_expression = var.sweeper_schedule_expression

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["sweeper"].arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = jsonencode({})

    # A sweep is idempotent and the next one comes soon: retry briefly, then drop.
    retry_policy {
      maximum_event_age_in_seconds = 600
      maximum_retry_attempts       = 2
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}
