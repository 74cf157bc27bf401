# The whole module against a local AWS emulator (moto server, see scripts/moto.sh):
#   scripts/package-local.sh
#   terraform -chdir=terraform/examples/local apply -var endpoint=http://127.0.0.1:PORT
# scripts/check-terraform.sh does exactly this, then runs the integration test
# against the tables it created, then destroys.

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70"
    }
  }
}

variable "endpoint" {
  description = "URL of the local AWS emulator, e.g. http://127.0.0.1:5000 (what `scripts/moto.sh start` prints)."
  type        = string

  validation {
    condition     = can(regex("^https?://[^/]+/?$", var.endpoint))
    error_message = "endpoint must be an http(s) URL with no path, e.g. http://127.0.0.1:5000."
  }
}

variable "lambda_zip_dir" {
  description = "Folder of `<function>/bootstrap.zip` built for the host (scripts/package-local.sh writes build/lambda/local)."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Architecture of the zips in lambda_zip_dir: the host's (scripts/check-terraform.sh passes it)."
  type        = string
  default     = "x86_64"
}

variable "plan_adoption" {
  description = "Also plan a second deployment that adopts this one's tables and bucket (create_tables = false, create_breakers_table = false, create_rate_limits_table = false, create_results_bucket = false). scripts/check-terraform.sh plans it after the apply; it is never applied."
  type        = bool
  default     = false
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  max_retries                 = 3 # an unsupported call fails fast instead of retrying for minutes

  endpoints {
    batch      = var.endpoint
    cloudwatch = var.endpoint
    logs       = var.endpoint
    dynamodb   = var.endpoint
    events     = var.endpoint
    iam        = var.endpoint
    lambda     = var.endpoint
    s3         = var.endpoint
    scheduler  = var.endpoint
    sfn        = var.endpoint
    sns        = var.endpoint
    sts        = var.endpoint
  }
}

module "arc_orchestrator" {
  source = "../.."

  name_prefix            = "arc-benchmark-local"
  lambda_zip_dir         = coalesce(var.lambda_zip_dir, "${path.module}/../../../build/lambda/local")
  lambda_architecture    = var.lambda_architecture
  runs_table_name        = "arc_benchmark_runs_local"
  tasks_table_name       = "arc_task_progress_local"
  breakers_table_name    = "arc_breakers_local"
  rate_limits_table_name = "arc_rate_limits_local"

  # The check destroys what it applied, whatever the deployed test wrote.
  table_deletion_protection    = false
  results_bucket_force_destroy = true

  # Dummy ARNs: nothing is submitted to Batch locally.
  batch_job_queue_arn      = "arn:aws:batch:us-east-1:123456789012:job-queue/arc-benchmark-local"
  batch_job_definition_arn = "arn:aws:batch:us-east-1:123456789012:job-definition/arc-benchmark-worker:1"

  enable_schedule   = true
  enable_monitoring = true
}

# A second deployment on the same data, as an existing installation would adopt its
# tables (runs, tasks, breakers, rate limits) and bucket: the data sources must find
# them with the keys and indexes the code expects (their postconditions check it).
module "adopting" {
  source = "../.."
  count  = var.plan_adoption ? 1 : 0

  name_prefix              = "arc-benchmark-adopt"
  lambda_zip_dir           = coalesce(var.lambda_zip_dir, "${path.module}/../../../build/lambda/local")
  lambda_architecture      = var.lambda_architecture
  create_tables            = false
  runs_table_name          = module.arc_orchestrator.runs_table_name
  tasks_table_name         = module.arc_orchestrator.tasks_table_name
  create_breakers_table    = false
  breakers_table_name      = module.arc_orchestrator.breakers_table_name
  create_rate_limits_table = false
  rate_limits_table_name   = module.arc_orchestrator.rate_limits_table_name
  create_results_bucket    = false
  results_bucket_name      = module.arc_orchestrator.results_bucket_name

  batch_job_queue_arn      = "arn:aws:batch:us-east-1:123456789012:job-queue/arc-benchmark-local"
  batch_job_definition_arn = "arn:aws:batch:us-east-1:123456789012:job-definition/arc-benchmark-worker"

  enable_schedule   = false
  enable_monitoring = false
}

output "runs_table_name" {
  description = "RUNS_TABLE for the integration test."
  value       = module.arc_orchestrator.runs_table_name
}

output "tasks_table_name" {
  description = "TASKS_TABLE for the integration test."
  value       = module.arc_orchestrator.tasks_table_name
}

output "breakers_table_name" {
  description = "BREAKERS_TABLE for the integration test."
  value       = module.arc_orchestrator.breakers_table_name
}

output "rate_limits_table_name" {
  description = "DYNAMODB_RATE_LIMIT_TABLE for the integration test."
  value       = module.arc_orchestrator.rate_limits_table_name
}

output "results_bucket_name" {
  description = "S3_BUCKET for the integration test."
  value       = module.arc_orchestrator.results_bucket_name
}

output "state_machine_arn" {
  description = "STATE_MACHINE_ARN for the integration test."
  value       = module.arc_orchestrator.state_machine_arn
}

output "function_names" {
  description = "The deployed functions."
  value       = module.arc_orchestrator.function_names
}
