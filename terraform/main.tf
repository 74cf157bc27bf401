# Shared lookups and names. Each concern has its own file: dynamodb.tf, s3.tf,
# lambda.tf, iam.tf, state_machine.tf, schedule.tf, monitoring.tf.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  # `id` is the region's name in every provider version this module admits (`name` is
  # deprecated from hashicorp/aws 6.0, `region` does not exist before it).
  region    = data.aws_region.current.id
  partition = data.aws_partition.current.partition

  # The five binaries of the workspace; each is one function.
  task_function_names = ["initialize", "handle-error", "aggregate", "complete"]
  function_names      = concat(local.task_function_names, ["sweeper"])

  function_full_names = { for name in local.function_names : name => "${var.name_prefix}-${name}" }

  lambda_zip_dir = coalesce(var.lambda_zip_dir, "${path.module}/../build/lambda/arm64")

  # The state machine's ARN is computed from its name, so that the sweeper (which
  # starts executions) and its IAM policy do not depend on the state machine
  # resource, which itself depends on the four task functions.
  state_machine_name          = "${var.name_prefix}-pipeline"
  state_machine_arn           = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}"
  state_machine_execution_arn = "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.state_machine_name}:*"

  # The sweeper schedule's own group (schedule.tf), computed for the scheduler role's
  # trust policy.
  schedule_group_name = var.name_prefix
  schedule_group_arn  = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule-group/${local.schedule_group_name}"
  schedule_arns       = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${local.schedule_group_name}/*"

  # The ProcessTasks Map writes its child results under this prefix of the results
  # bucket (ResultWriter; the same literal is in state_machine.asl.json).
  map_results_prefix = "map-results"

  tags = merge({ "arc-orchestrator:module" = "terraform" }, var.tags)
}
