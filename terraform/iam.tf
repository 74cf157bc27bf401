# IAM: one role per function, granting exactly what function_permissions.json
# lists (function -> resource class -> actions) plus writing to its own log group;
# the state machine's role; the scheduler's role. Every role gets var.role_path and
# var.role_permissions_boundary.

locals {
  function_permissions = jsondecode(file("${path.module}/function_permissions.json"))

  # Every resource class function_permissions.json may name, and its ARNs.
  permission_resources = {
    runs_table         = [local.runs_table_arn]
    tasks_table        = [local.tasks_table_arn]
    breakers_table     = [local.breakers_table_arn]
    tasks_status_index = ["${local.tasks_table_arn}/index/status-index"]
    runs_config_index  = ["${local.runs_table_arn}/index/config-created-index"]
    results_objects    = ["${local.results_bucket_arn}/runs/*"]
    state_machine      = [local.state_machine_arn]
    executions         = [local.state_machine_execution_arn]
    cloudwatch_metrics = ["*"] # PutMetricData has no resource; conditioned on the namespace below
  }
}

# Lambda documents no confused-deputy condition keys for execution roles (unlike
# Step Functions and Scheduler below), so this trust policy has none.
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.function_full_names

  name                 = "${each.value}-role"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  description          = "arc-orchestrator ${each.key} Lambda"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  tags                 = local.tags
}

data "aws_iam_policy_document" "function" {
  for_each = local.function_full_names

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = lookup(local.function_permissions, each.key, {})

    content {
      sid       = replace(title(replace(statement.key, "_", " ")), " ", "")
      actions   = statement.value
      resources = local.permission_resources[statement.key]

      dynamic "condition" {
        for_each = statement.key == "cloudwatch_metrics" ? [var.cloudwatch_namespace] : []

        content {
          test     = "StringEquals"
          variable = "cloudwatch:namespace"
          values   = [condition.value]
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_full_names

  name   = "${each.value}-policy"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json

  lifecycle {
    precondition {
      condition     = sort(keys(local.function_permissions)) == sort(local.function_names)
      error_message = "function_permissions.json must name exactly the functions initialize, handle-error, aggregate, complete and sweeper."
    }
    precondition {
      condition = alltrue([
        for classes in values(local.function_permissions) :
        alltrue([for class in keys(classes) : contains(keys(local.permission_resources), class)])
      ])
      error_message = "function_permissions.json names a resource class this module does not know (known: runs_table, tasks_table, breakers_table, tasks_status_index, runs_config_index, results_objects, state_machine, executions, cloudwatch_metrics)."
    }
  }
}

# --- State machine role -----------------------------------------------------

# Only this state machine may assume the role: aws:SourceArn is its ARN, that ARN
# qualified by a Distributed Map label (`<arn>/ProcessTasks`, the state machine of the
# map's child executions), or one of its Map Runs. Every form names this state
# machine only.
data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        local.state_machine_arn,
        "${local.state_machine_arn}/*",
        "arn:${local.partition}:states:${local.region}:${local.account_id}:mapRun:${local.state_machine_name}/*",
      ]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name                 = "${local.state_machine_name}-role"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  description          = "arc-orchestrator state machine"
  assume_role_policy   = data.aws_iam_policy_document.states_assume.json
  tags                 = local.tags
}

locals {
  # Without its `:revision`, so that the grant covers every revision of the family.
  batch_job_definition_family_arn = regex("^(.*:job-definition/[A-Za-z0-9_-]+)", var.batch_job_definition_arn)[0]
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid       = "InvokeTaskFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = flatten([for name in local.task_function_names : [aws_lambda_function.this[name].arn, "${aws_lambda_function.this[name].arn}:*"]])
  }

  statement {
    sid     = "SubmitBatchJobs"
    actions = ["batch:SubmitJob"]
    resources = [
      var.batch_job_queue_arn,
      local.batch_job_definition_family_arn,
      "${local.batch_job_definition_family_arn}:*",
    ]
  }

  statement {
    sid       = "ManageBatchJobs"
    actions   = ["batch:TerminateJob"]
    resources = ["arn:${local.partition}:batch:${local.region}:${local.account_id}:job/*"]
  }

  statement {
    sid       = "DescribeBatchJobs"
    actions   = ["batch:DescribeJobs"] # no resource-level permissions
    resources = ["*"]
  }

  # The ProcessTasks Distributed Map: it starts one child execution of this state
  # machine per task, describes and stops them; reads the task ids from the items
  # object Initialize wrote under runs/; writes the child results (ResultWriter)
  # under map-results/. Its children are managed by Step Functions itself (no
  # StartExecution.sync), so no StepFunctionsGetEventsForStepFunctionsExecutionRule.
  statement {
    sid       = "StartMapChildExecutions"
    actions   = ["states:StartExecution"]
    resources = [local.state_machine_arn]
  }

  statement {
    sid     = "ManageMapChildExecutions"
    actions = ["states:DescribeExecution", "states:StopExecution"]
    resources = [
      local.state_machine_execution_arn,
      "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.state_machine_name}/*",
    ]
  }

  statement {
    sid       = "ReadMapItems"
    actions   = ["s3:GetObject"]
    resources = ["${local.results_bucket_arn}/runs/*"]
  }

  statement {
    sid = "WriteMapResults"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:ListMultipartUploadParts",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${local.results_bucket_arn}/${local.map_results_prefix}/*"]
  }

  statement {
    sid       = "SyncBatchJobEvents"
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/StepFunctionsGetEventsForBatchJobsRule"]
  }

  statement {
    sid = "LogDelivery" # CloudWatch Logs vended delivery: these actions take no resource
    actions = [
      "logs:CreateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:DescribeLogGroups",
      "logs:DescribeResourcePolicies",
      "logs:GetLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:UpdateLogDelivery",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "${local.state_machine_name}-policy"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}

# --- Scheduler role ---------------------------------------------------------

# EventBridge Scheduler's confused-deputy guidance scopes aws:SourceArn to the
# schedule group (its current documentation: not to one schedule's ARN; older pages
# show `schedule/<group>/*`). Both forms are accepted, for the module's own group only,
# which holds nothing but the sweeper schedule.
data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.schedule_group_arn, local.schedule_arns]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = var.enable_schedule ? 1 : 0

  name                 = "${var.name_prefix}-sweeper-schedule-role"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  description          = "arc-orchestrator sweeper schedule"
  assume_role_policy   = data.aws_iam_policy_document.scheduler_assume.json
  tags                 = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeSweeper"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this["sweeper"].arn, "${aws_lambda_function.this["sweeper"].arn}:*"]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = var.enable_schedule ? 1 : 0

  name   = "${var.name_prefix}-sweeper-schedule-policy"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler.json
}
