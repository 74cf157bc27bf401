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
  description = "DynamoDB deletion protection on the tables this module creates (runs, tasks, breakers, rate limits): `terraform destroy` (or a rename) cannot delete a table holding the benchmark history until this is set to false and applied."
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

variable "create_breakers_table" {
  description = "Create the sweeper's circuit breakers table. Independent of create_tables because an installation of the Python handler set has no breakers table: adopting its runs and tasks tables still creates this one. Set to false to adopt the breakers table of an existing module deployment by breakers_table_name (hash key `config_name`, no range key: the plan fails otherwise)."
  type        = bool
  default     = true
}

variable "breakers_table_name" {
  description = "Name of the circuit breakers table (BREAKERS_TABLE of the sweeper; hash key `config_name`, one item per model config). Null: `<name_prefix>-breakers`, so that two deployments in one account get their own without setting it."
  type        = string
  default     = null

  validation {
    condition     = var.breakers_table_name == null || can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.breakers_table_name))
    error_message = "breakers_table_name must be null or a valid DynamoDB table name: 3-255 characters of letters, digits, '_', '-' and '.'."
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

# --- Failure classes (handle-error and sweeper) -------------------------------

variable "infra_max_retries" {
  description = "INFRA_MAX_RETRIES (handle-error and sweeper): infrastructure failures a task is spared (a Spot reclaim or lost host, a job that never reached RUNNING, an image pull error, an exit code of failure_class_infra_exit_codes): up to this many are retried without consuming the task's max_retries; beyond, they count like any failure. Default 5: the platform failing an attempt says nothing about the task, so a few reclaims must not make it FAILED_PERMANENT, but a task that keeps \"failing on infrastructure\" (a misclassified crash) must still end. 0: infrastructure failures count like any other."
  type        = number
  default     = 5

  validation {
    condition     = var.infra_max_retries >= 0 && var.infra_max_retries <= 100 && floor(var.infra_max_retries) == var.infra_max_retries
    error_message = "infra_max_retries must be a whole number between 0 and 100."
  }
}

variable "failure_class_infra_exit_codes" {
  description = "FAILURE_CLASS_INFRA_EXIT_CODES (handle-error and sweeper, joined with commas): exit codes of a job's last attempt that class its failure as infrastructure (e.g. 137, a container killed by SIGKILL). Default []: no exit code is infrastructure by itself; list codes only once the worker is known to exit with them for platform reasons, not the task's."
  type        = list(number)
  default     = []

  validation {
    condition     = alltrue([for c in var.failure_class_infra_exit_codes : c >= 0 && c <= 255 && floor(c) == c])
    error_message = "failure_class_infra_exit_codes entries must be whole numbers between 0 and 255 (container exit codes)."
  }
}

variable "failure_class_infra_patterns" {
  description = "FAILURE_CLASS_INFRA_PATTERNS (handle-error and sweeper, joined with commas): case-insensitive substrings of a failed job's (or its container's) status reason that class the failure as infrastructure. Default []: the functions' built-in list (\"Host EC2\", \"CannotPullContainerError\", \"ResourceInitializationError\", \"Spot instance\", ...); a non-empty list replaces it, so repeat what you still want of it. No entry may be empty, contain a comma (the separator) or start or end with whitespace (the functions trim entries)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.failure_class_infra_patterns : length(p) > 0 && !strcontains(p, ",") && trimspace(p) == p])
    error_message = "failure_class_infra_patterns entries must be non-empty, contain no comma (the list is joined with commas) and not start or end with whitespace."
  }
}

variable "failure_class_provider_patterns" {
  description = "FAILURE_CLASS_PROVIDER_PATTERNS (handle-error and sweeper, joined with commas): case-insensitive substrings of the worker's error text or the failure's Cause that class a failure as the model provider's (rate limit, quota, outage): the failures the sweeper's circuit breaker counts per config. Default []: the functions' built-in list (\"rate limit\", \"too many requests\", \"error code: 429\", \"insufficient_quota\", \"overloaded\", \"error code: 503\", ...); a non-empty list replaces it, so repeat what you still want of it. Same rules as failure_class_infra_patterns."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.failure_class_provider_patterns : length(p) > 0 && !strcontains(p, ",") && trimspace(p) == p])
    error_message = "failure_class_provider_patterns entries must be non-empty, contain no comma (the list is joined with commas) and not start or end with whitespace."
  }
}

# --- Circuit breaker (sweeper) and cost budget (initialize) -------------------

variable "sweeper_breaker_min_failures" {
  description = "SWEEPER_BREAKER_MIN_FAILURES: provider failures of one config within sweeper_breaker_window_seconds before its breaker may open (the sweeper then stops retrying that config's tasks). Default 10: together with the ratio, 10 provider failures at >= 50% of the config's tasks ended in the last 30 minutes look like an outage, not flaky tasks; fewer would open breakers on a few unlucky tasks."
  type        = number
  default     = 10

  validation {
    condition     = var.sweeper_breaker_min_failures >= 1 && var.sweeper_breaker_min_failures <= 100000 && floor(var.sweeper_breaker_min_failures) == var.sweeper_breaker_min_failures
    error_message = "sweeper_breaker_min_failures must be a whole number between 1 and 100000, the range the sweeper accepts."
  }
}

variable "sweeper_breaker_failure_ratio" {
  description = "SWEEPER_BREAKER_FAILURE_RATIO: share of a config's tasks ended within the window that must be provider failures for its breaker to open (with at least sweeper_breaker_min_failures of them). Default 0.5: when half of what ended failed on the provider, retrying only adds load to an outage; a lower ratio would trip on a busy config's normal failure rate. 0 < ratio <= 1."
  type        = number
  default     = 0.5

  validation {
    condition     = var.sweeper_breaker_failure_ratio > 0 && var.sweeper_breaker_failure_ratio <= 1
    error_message = "sweeper_breaker_failure_ratio must be greater than 0 and at most 1."
  }
}

variable "sweeper_breaker_window_seconds" {
  description = "SWEEPER_BREAKER_WINDOW_SECONDS: the window of recently ended tasks the breaker counts, in seconds. Default 1800 (30 minutes, two sweeps at the default schedule): long enough to see a pattern, short enough that an outage that ended an hour ago no longer counts."
  type        = number
  default     = 1800

  validation {
    condition     = var.sweeper_breaker_window_seconds >= 60 && var.sweeper_breaker_window_seconds <= 86400 && floor(var.sweeper_breaker_window_seconds) == var.sweeper_breaker_window_seconds
    error_message = "sweeper_breaker_window_seconds must be a whole number between 60 and 86400 (one day)."
  }
}

variable "sweeper_breaker_cooldown_seconds" {
  description = "SWEEPER_BREAKER_COOLDOWN_SECONDS: how long an open breaker holds its config's retries before it goes half-open and retries a few tasks (sweeper_breaker_probe_tasks). The cooldown doubles each time the breaker re-opens after a failed probe, up to sweeper_breaker_max_cooldown_seconds. Default 900 (15 minutes, one sweep at the default schedule): most provider incidents outlast it, and a short first cooldown costs only a few probe tasks."
  type        = number
  default     = 900

  validation {
    condition     = var.sweeper_breaker_cooldown_seconds >= 60 && var.sweeper_breaker_cooldown_seconds <= 86400 && floor(var.sweeper_breaker_cooldown_seconds) == var.sweeper_breaker_cooldown_seconds
    error_message = "sweeper_breaker_cooldown_seconds must be a whole number between 60 and 86400 (one day)."
  }
}

variable "sweeper_breaker_max_cooldown_seconds" {
  description = "SWEEPER_BREAKER_MAX_COOLDOWN_SECONDS: cap of the doubling cooldown; at least sweeper_breaker_cooldown_seconds. Default 14400 (4 hours): a config whose provider stays down is probed a few times a day instead of every sweep, and is back within 4 hours of the provider's recovery."
  type        = number
  default     = 14400

  validation {
    condition     = var.sweeper_breaker_max_cooldown_seconds >= 60 && var.sweeper_breaker_max_cooldown_seconds <= 604800 && floor(var.sweeper_breaker_max_cooldown_seconds) == var.sweeper_breaker_max_cooldown_seconds
    error_message = "sweeper_breaker_max_cooldown_seconds must be a whole number between 60 and 604800 (7 days)."
  }

  validation {
    condition     = var.sweeper_breaker_max_cooldown_seconds >= var.sweeper_breaker_cooldown_seconds
    error_message = "sweeper_breaker_max_cooldown_seconds must be at least sweeper_breaker_cooldown_seconds (the cooldown only grows from it)."
  }
}

variable "sweeper_breaker_probe_tasks" {
  description = "SWEEPER_BREAKER_PROBE_TASKS: how many of its config's tasks a half-open breaker retries to test whether the provider is back; the breaker closes when every probe ended without a provider failure, and re-opens with a doubled cooldown when one failed for the provider. Default 5: enough tasks to see the provider answer again, few enough that a provider still down costs only a handful of failed attempts per cooldown."
  type        = number
  default     = 5

  validation {
    condition     = var.sweeper_breaker_probe_tasks >= 1 && var.sweeper_breaker_probe_tasks <= 100 && floor(var.sweeper_breaker_probe_tasks) == var.sweeper_breaker_probe_tasks
    error_message = "sweeper_breaker_probe_tasks must be a whole number between 1 and 100."
  }
}

variable "run_max_cost_usd" {
  description = "RUN_MAX_COST_USD (initialize): cost budget, in USD, of a run whose start input gives no max_cost_usd: the sweeper then re-queues only the failed tasks whose estimated cost (the run's mean completed-task cost) still fits it. Null (the default): no limit, rendered as RUN_MAX_COST_USD = \"\" (the functions read an empty value as unset), so that a deployment keeps retrying its runs whole until a budget is chosen. Must be greater than 0 when set."
  type        = number
  default     = null

  validation {
    condition     = var.run_max_cost_usd == null || try(var.run_max_cost_usd > 0, false)
    error_message = "run_max_cost_usd must be null (no limit) or greater than 0."
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
