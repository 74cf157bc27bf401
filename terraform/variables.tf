# Inputs of the arc-orchestrator module. The surface is kept narrow on purpose:
# everything an operator chooses per deployment, nothing that only restates an
# AWS default.

variable "name_prefix" {
  description = "Prefix of every named resource: functions are `<name_prefix>-<function>` (e.g. `arc-benchmark-sandbox-teal-initialize`), the state machine `<name_prefix>-pipeline`."
  type        = string
  default     = "arc-benchmark"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,37}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-39 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen (it also prefixes the generated S3 bucket name)."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

# --- IAM --------------------------------------------------------------------

variable "role_path" {
  description = "Path of every IAM role the module creates (the five function roles, the state machine's, the scheduler's)."
  type        = string
  default     = "/"

  validation {
    condition     = length(var.role_path) <= 512 && can(regex("^/([\\x21-\\x7E]+/)?$", var.role_path)) && !strcontains(var.role_path, "//")
    error_message = "role_path must be \"/\" or a path that starts and ends with \"/\" (e.g. \"/arc-orchestrator/\"), at most 512 printable ASCII characters."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of the managed policy set as permissions boundary on every IAM role the module creates. Null: no boundary."
  type        = string
  default     = null

  validation {
    condition     = var.role_permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.role_permissions_boundary))
    error_message = "role_permissions_boundary must be null or an IAM managed policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)."
  }
}

# --- DynamoDB ---------------------------------------------------------------

variable "create_tables" {
  description = "Create the runs and tasks tables. Set to false to adopt the tables of an existing deployment by name (they must already have the keys and indexes of docs/ARCHITECTURE.md: the plan fails otherwise)."
  type        = bool
  default     = true
}

variable "table_deletion_protection" {
  description = "DynamoDB deletion protection on the tables this module creates (runs, tasks, rate limits): `terraform destroy` (or a rename) cannot delete a table holding the benchmark history until this is set to false and applied."
  type        = bool
  default     = true
}

variable "runs_table_name" {
  description = "Name of the runs table (hash key `run_id`, GSI `config-created-index`)."
  type        = string
  default     = "arc_benchmark_runs"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.runs_table_name))
    error_message = "runs_table_name must be a valid DynamoDB table name: 3-255 characters of letters, digits, '_', '-' and '.'."
  }
}

variable "tasks_table_name" {
  description = "Name of the tasks table (hash key `run_id`, range key `task_id`, GSI `status-index`)."
  type        = string
  default     = "arc_task_progress"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.tasks_table_name))
    error_message = "tasks_table_name must be a valid DynamoDB table name: 3-255 characters of letters, digits, '_', '-' and '.'."
  }
}

variable "create_rate_limits_table" {
  description = "Create the rate limits table the worker reads (DYNAMODB_RATE_LIMIT_TABLE of its job definition). Set to false to adopt an existing one by name (an existing deployment already has it). None of the module's functions is granted access to it."
  type        = bool
  default     = true
}

variable "rate_limits_table_name" {
  description = "Name of the rate limits table (hash key `provider`)."
  type        = string
  default     = "arc_rate_limits"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.rate_limits_table_name))
    error_message = "rate_limits_table_name must be a valid DynamoDB table name: 3-255 characters of letters, digits, '_', '-' and '.'."
  }
}

# --- S3 ---------------------------------------------------------------------

variable "create_results_bucket" {
  description = "Create the results bucket. Set to false to use an existing bucket named by results_bucket_name."
  type        = bool
  default     = true
}

variable "results_bucket_force_destroy" {
  description = "Let `terraform destroy` delete the created results bucket with every object (and version) in it: the reports, the task lists and the Map results. Keep false where the reports matter."
  type        = bool
  default     = false
}

variable "results_bucket_name" {
  description = "Name of the results bucket (reports go to `runs/<run_id>/results/aggregated.json`). Null with create_results_bucket = true: `<name_prefix>-results-<account id>`. Required when create_results_bucket = false."
  type        = string
  default     = null

  validation {
    condition     = var.results_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.results_bucket_name))
    error_message = "results_bucket_name must be a valid S3 bucket name: 3-63 characters of lowercase letters, digits, '.' and '-'."
  }
}

# --- Lambda -----------------------------------------------------------------

variable "lambda_zip_dir" {
  description = "Folder holding `<function>/bootstrap.zip` for initialize, handle-error, aggregate, complete and sweeper (what scripts/build-lambdas.sh writes). Null: `build/lambda/arm64` of the repository this module sits in."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_zip_dir == null || length(trimspace(coalesce(var.lambda_zip_dir, " "))) > 0
    error_message = "lambda_zip_dir must be null or a non-empty path."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the Lambda functions; must match the zips (scripts/build-lambdas.sh --arch)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of each Lambda function, in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.lambda_memory_mb >= 128 && var.lambda_memory_mb <= 10240 && floor(var.lambda_memory_mb) == var.lambda_memory_mb
    error_message = "lambda_memory_mb must be a whole number between 128 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of the four Step Functions task Lambdas, in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.lambda_timeout_seconds >= 3 && var.lambda_timeout_seconds <= 900
    error_message = "lambda_timeout_seconds must be between 3 and 900."
  }
}

variable "sweeper_timeout_seconds" {
  description = "Timeout of the sweeper Lambda, in seconds (a sweep pages through every FAILED task)."
  type        = number
  default     = 300

  validation {
    condition     = var.sweeper_timeout_seconds >= 3 && var.sweeper_timeout_seconds <= 900
    error_message = "sweeper_timeout_seconds must be between 3 and 900."
  }
}

variable "log_retention_days" {
  description = "Retention of the Lambda and state machine log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

# --- Behaviour (docs/ARCHITECTURE.md) ----------------------------------------

variable "max_retries" {
  description = "MAX_RETRIES: failed attempts after which a task is FAILED_PERMANENT."
  type        = number
  default     = 3

  validation {
    condition     = var.max_retries >= 1 && var.max_retries <= 100 && floor(var.max_retries) == var.max_retries
    error_message = "max_retries must be a whole number between 1 and 100."
  }
}

variable "non_retryable_errors" {
  description = "NON_RETRYABLE_ERRORS: error names that make a task FAILED_PERMANENT at once (joined with commas)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.non_retryable_errors : can(regex("^[^,\\s]+$", e))])
    error_message = "non_retryable_errors entries must be non-empty and contain no commas or whitespace."
  }
}

variable "cloudwatch_namespace" {
  description = "CLOUDWATCH_NAMESPACE: namespace of the custom metrics (complete, sweeper, the permanent-failure metric filter); PutMetricData is only allowed into it."
  type        = string
  default     = "ArcBenchmark"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.cloudwatch_namespace)) && !startswith(var.cloudwatch_namespace, "AWS/")
    error_message = "cloudwatch_namespace must be 1-255 characters of letters, digits and . _ / # : - and must not start with AWS/."
  }
}

variable "sweeper_base_delay_seconds" {
  description = "SWEEPER_BASE_DELAY_SECONDS (sweeper and handle-error): backoff of the first retry. handle-error computes a failed task's next_retry_at with it, the sweeper re-queues the task once it is due."
  type        = number
  default     = 300

  validation {
    condition     = var.sweeper_base_delay_seconds >= 1 && var.sweeper_base_delay_seconds <= 2592000 && floor(var.sweeper_base_delay_seconds) == var.sweeper_base_delay_seconds
    error_message = "sweeper_base_delay_seconds must be a whole number between 1 and 2592000 (30 days), the range the functions accept."
  }
}

variable "sweeper_max_delay_seconds" {
  description = "SWEEPER_MAX_DELAY_SECONDS (sweeper and handle-error): cap of the retry backoff; at least sweeper_base_delay_seconds."
  type        = number
  default     = 21600

  validation {
    condition     = var.sweeper_max_delay_seconds >= 1 && var.sweeper_max_delay_seconds <= 2592000 && floor(var.sweeper_max_delay_seconds) == var.sweeper_max_delay_seconds
    error_message = "sweeper_max_delay_seconds must be a whole number between 1 and 2592000 (30 days), the range the functions accept."
  }

  validation {
    condition     = var.sweeper_max_delay_seconds >= var.sweeper_base_delay_seconds
    error_message = "sweeper_max_delay_seconds must be at least sweeper_base_delay_seconds (the functions refuse to start otherwise)."
  }
}

variable "sweeper_max_tasks" {
  description = "SWEEPER_MAX_TASKS: tasks re-queued per sweep at most."
  type        = number
  default     = 1000

  validation {
    condition     = var.sweeper_max_tasks >= 1 && var.sweeper_max_tasks <= 100000 && floor(var.sweeper_max_tasks) == var.sweeper_max_tasks
    error_message = "sweeper_max_tasks must be a whole number between 1 and 100000, the range the sweeper accepts."
  }
}

variable "sweeper_max_age_hours" {
  description = "SWEEPER_MAX_AGE_HOURS: a FAILED task whose failure is older than this many hours is not retried automatically (the sweeper reports it as deferred, reason too_old). Keeps an adopted deployment from re-running months-old failures."
  type        = number
  default     = 72

  validation {
    condition     = var.sweeper_max_age_hours >= 1 && var.sweeper_max_age_hours <= 8760 && floor(var.sweeper_max_age_hours) == var.sweeper_max_age_hours
    error_message = "sweeper_max_age_hours must be a whole number between 1 and 8760 (one year)."
  }
}

# --- Step Functions + Batch -------------------------------------------------

variable "batch_job_queue_arn" {
  description = "ARN of the existing AWS Batch job queue the worker jobs run in."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:job-queue/[A-Za-z0-9_-]+$", var.batch_job_queue_arn))
    error_message = "batch_job_queue_arn must be a Batch job queue ARN (arn:aws:batch:REGION:ACCOUNT:job-queue/NAME)."
  }
}

variable "batch_job_definition_arn" {
  description = "ARN of the existing AWS Batch job definition of the worker, with or without `:revision` (without: the latest active revision)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:job-definition/[A-Za-z0-9_-]+(:[0-9]+)?$", var.batch_job_definition_arn))
    error_message = "batch_job_definition_arn must be a Batch job definition ARN (arn:aws:batch:REGION:ACCOUNT:job-definition/NAME[:REVISION])."
  }
}

variable "map_max_concurrency" {
  description = "MaxConcurrency of the ProcessTasks Distributed Map: child executions, hence Batch jobs, of one run in flight at once. A Distributed Map runs at most 10,000 child executions in parallel; the job queue's compute environment bounds what really runs."
  type        = number
  default     = 10

  validation {
    condition     = var.map_max_concurrency >= 1 && var.map_max_concurrency <= 10000 && floor(var.map_max_concurrency) == var.map_max_concurrency
    error_message = "map_max_concurrency must be a whole number between 1 and 10000 (the parallel child executions of a Distributed Map)."
  }
}

variable "batch_task_timeout_seconds" {
  description = "TimeoutSeconds of a task's Batch job state: a job not finished by then (running too long, or stuck in RUNNABLE) ends as a task failure, recorded by handle-error and retried by the sweeper like any other."
  type        = number
  default     = 21600

  validation {
    condition     = var.batch_task_timeout_seconds >= 60 && var.batch_task_timeout_seconds <= 604800 && floor(var.batch_task_timeout_seconds) == var.batch_task_timeout_seconds
    error_message = "batch_task_timeout_seconds must be a whole number between 60 and 604800 (7 days)."
  }
}

variable "execution_timeout_seconds" {
  description = "TimeoutSeconds of a whole execution (one run, or one retry of a run). It must exceed batch_task_timeout_seconds. An execution that times out leaves its run to the sweeper, which repairs it."
  type        = number
  default     = 259200

  validation {
    condition     = var.execution_timeout_seconds >= 3600 && var.execution_timeout_seconds <= 31536000 && floor(var.execution_timeout_seconds) == var.execution_timeout_seconds
    error_message = "execution_timeout_seconds must be a whole number between 3600 and 31536000 (the one-year limit of a Standard execution)."
  }

  validation {
    condition     = var.execution_timeout_seconds > var.batch_task_timeout_seconds
    error_message = "execution_timeout_seconds must be greater than batch_task_timeout_seconds: a run must outlast its longest task."
  }
}

# --- Schedule + monitoring --------------------------------------------------

variable "enable_schedule" {
  description = "Create the EventBridge Scheduler schedule that invokes the sweeper."
  type        = bool
  default     = true
}

variable "sweeper_schedule_expression" {
  description = "EventBridge Scheduler expression of the sweeper."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.sweeper_schedule_expression))
    error_message = "sweeper_schedule_expression must be rate(N unit) or cron(...)."
  }
}

variable "sweeper_schedule_interval_seconds" {
  description = "Interval of the sweeper schedule, in seconds, for the sweeper-not-running alarm (it fires after two intervals without an invocation). Null: read from a rate() expression, or 900 for a cron() expression (set it for a cron schedule that runs less often)."
  type        = number
  default     = null

  validation {
    condition     = var.sweeper_schedule_interval_seconds == null || try(var.sweeper_schedule_interval_seconds >= 60 && var.sweeper_schedule_interval_seconds <= 302400 && var.sweeper_schedule_interval_seconds % 60 == 0, false)
    error_message = "sweeper_schedule_interval_seconds must be null or a multiple of 60 between 60 and 302400 (two periods of a CloudWatch alarm span at most 7 days)."
  }
}

variable "enable_monitoring" {
  description = "Create the CloudWatch alarms, the permanent-failure metric filter and the dashboard."
  type        = bool
  default     = true
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified when an alarm fires or recovers. Null: alarms without actions."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be null or an SNS topic ARN."
  }
}
