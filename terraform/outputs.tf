output "state_machine_arn" {
  description = "ARN of the pipeline state machine (start a run with `aws stepfunctions start-execution --input '{\"config_name\":...,\"task_ids\":[...]}'`)."
  value       = aws_sfn_state_machine.this.arn
}

output "state_machine_name" {
  description = "Name of the pipeline state machine."
  value       = aws_sfn_state_machine.this.name
}

output "function_names" {
  description = "Lambda function names by binary name (initialize, handle-error, aggregate, complete, sweeper): the targets of `aws lambda update-function-code`."
  value       = { for name, fn in aws_lambda_function.this : name => fn.function_name }
}

output "function_arns" {
  description = "Lambda function ARNs by binary name."
  value       = { for name, fn in aws_lambda_function.this : name => fn.arn }
}

output "function_role_arns" {
  description = "IAM role ARNs of the functions by binary name."
  value       = { for name, role in aws_iam_role.function : name => role.arn }
}

output "runs_table_name" {
  description = "Name of the runs table (RUNS_TABLE)."
  value       = local.runs_table_name
}

output "runs_table_arn" {
  description = "ARN of the runs table."
  value       = local.runs_table_arn
}

output "tasks_table_name" {
  description = "Name of the tasks table (TASKS_TABLE)."
  value       = local.tasks_table_name
}

output "tasks_table_arn" {
  description = "ARN of the tasks table."
  value       = local.tasks_table_arn
}

output "breakers_table_name" {
  description = "Name of the sweeper's circuit breakers table, created or adopted (BREAKERS_TABLE)."
  value       = local.breakers_table_name
}

output "breakers_table_arn" {
  description = "ARN of the circuit breakers table."
  value       = local.breakers_table_arn
}

output "rate_limits_table_name" {
  description = "Name of the worker's rate limits table, created or adopted: DYNAMODB_RATE_LIMIT_TABLE of the worker's job definition."
  value       = local.rate_limits_table_name
}

output "rate_limits_table_arn" {
  description = "ARN of the rate limits table (for the worker's job role, which the module does not manage)."
  value       = local.rate_limits_table_arn
}

output "results_bucket_name" {
  description = "Name of the results bucket (S3_BUCKET)."
  value       = var.create_results_bucket ? aws_s3_bucket.results[0].id : data.aws_s3_bucket.existing[0].id
}

output "sweeper_schedule_arn" {
  description = "ARN of the sweeper's EventBridge Scheduler schedule (null when enable_schedule = false)."
  value       = var.enable_schedule ? aws_scheduler_schedule.sweeper[0].arn : null
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null when enable_monitoring = false)."
  value       = var.enable_monitoring ? aws_cloudwatch_dashboard.this[0].dashboard_name : null
}
