# A sandbox deployment next to production in the same account: its own tables, bucket,
# functions (arc-benchmark-sandbox-teal-initialize, ...), state machine, schedule and
# metrics namespace (see "Two deployments in one account" in terraform/README.md).
#   scripts/build-lambdas.sh
#   terraform -chdir=terraform/examples/sandbox init
#   terraform -chdir=terraform/examples/sandbox apply \
#     -var batch_job_queue_arn=arn:aws:batch:... -var batch_job_definition_arn=arn:aws:batch:...

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70"
    }
  }
}

variable "region" {
  description = "AWS region of the sandbox."
  type        = string
  default     = "us-east-1"
}

variable "batch_job_queue_arn" {
  description = "ARN of the existing Batch job queue of the worker."
  type        = string
}

variable "batch_job_definition_arn" {
  description = "ARN of the existing Batch job definition of the worker."
  type        = string
}

variable "lambda_zip_dir" {
  description = "Folder of `<function>/bootstrap.zip` (scripts/build-lambdas.sh writes build/lambda/arm64). Null: that folder of this repository."
  type        = string
  default     = null
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic for the alarms (optional)."
  type        = string
  default     = null
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project     = "arc-orchestrator"
      environment = "sandbox-teal"
    }
  }
}

module "arc_orchestrator" {
  source = "../.."

  name_prefix            = "arc-benchmark-sandbox-teal"
  lambda_zip_dir         = coalesce(var.lambda_zip_dir, "${path.module}/../../../build/lambda/arm64")
  runs_table_name        = "arc_benchmark_runs_sandbox_teal"
  tasks_table_name       = "arc_task_progress_sandbox_teal"
  rate_limits_table_name = "arc_rate_limits_sandbox_teal"
  cloudwatch_namespace   = "ArcBenchmarkSandboxTeal"

  # A sandbox is meant to be torn down with `terraform destroy`: its tables and its
  # results bucket (with every report in it) go with it.
  table_deletion_protection    = false
  results_bucket_force_destroy = true

  batch_job_queue_arn      = var.batch_job_queue_arn
  batch_job_definition_arn = var.batch_job_definition_arn
  map_max_concurrency      = 5

  log_retention_days  = 14
  alarm_sns_topic_arn = var.alarm_sns_topic_arn
}

output "state_machine_arn" {
  description = "Start a run: aws stepfunctions start-execution --state-machine-arn <this> --input '{\"config_name\":\"...\",\"task_ids\":[\"...\"]}'."
  value       = module.arc_orchestrator.state_machine_arn
}

output "function_names" {
  description = "The deployed functions, for `aws lambda update-function-code`."
  value       = module.arc_orchestrator.function_names
}

output "rate_limits_table_name" {
  description = "DYNAMODB_RATE_LIMIT_TABLE of the sandbox worker's job definition."
  value       = module.arc_orchestrator.rate_limits_table_name
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = module.arc_orchestrator.dashboard_name
}
