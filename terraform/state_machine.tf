# The pipeline state machine: state_machine.asl.json rendered with the ARNs, names
# and limits of this deployment. Every template variable must also be rendered by
# scripts/render-state-machine.sh and tests/tests/asl.rs.

locals {
  state_machine_definition = templatefile("${path.module}/state_machine.asl.json", {
    initialize_arn             = aws_lambda_function.this["initialize"].arn
    handle_error_arn           = aws_lambda_function.this["handle-error"].arn
    aggregate_arn              = aws_lambda_function.this["aggregate"].arn
    complete_arn               = aws_lambda_function.this["complete"].arn
    batch_job_queue_arn        = var.batch_job_queue_arn
    batch_job_definition_arn   = var.batch_job_definition_arn
    results_bucket             = local.results_bucket_name
    runs_table                 = local.runs_table_name
    tasks_table                = local.tasks_table_name
    map_max_concurrency        = var.map_max_concurrency
    batch_task_timeout_seconds = var.batch_task_timeout_seconds
    execution_timeout_seconds  = var.execution_timeout_seconds
  })
}

resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${local.state_machine_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_sfn_state_machine" "this" {
  name       = local.state_machine_name
  role_arn   = aws_iam_role.state_machine.arn
  type       = "STANDARD"
  definition = local.state_machine_definition

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = true
    level                  = "ERROR"
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.state_machine]

  lifecycle {
    precondition {
      condition     = jsondecode(local.state_machine_definition).States.ProcessTasks.ResultWriter.Parameters.Prefix == local.map_results_prefix
      error_message = "The ResultWriter prefix of state_machine.asl.json differs from local.map_results_prefix, where the state machine role may write."
    }

    postcondition {
      condition     = self.arn == local.state_machine_arn
      error_message = "The state machine ARN differs from the one computed for the sweeper's STATE_MACHINE_ARN and IAM policy."
    }
  }
}
