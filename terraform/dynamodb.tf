# The runs and tasks tables of DESIGN.md section 2, created here or adopted from an
# existing deployment (create_tables = false).

resource "aws_dynamodb_table" "runs" {
  count = var.create_tables ? 1 : 0

  name         = var.runs_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "run_id"

  attribute {
    name = "run_id"
    type = "S"
  }

  attribute {
    name = "config_name"
    type = "S"
  }

  attribute {
    name = "created_at"
    type = "S"
  }

  global_secondary_index {
    name            = "config-created-index"
    hash_key        = "config_name"
    range_key       = "created_at"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.table_deletion_protection

  tags = local.tags
}

resource "aws_dynamodb_table" "tasks" {
  count = var.create_tables ? 1 : 0

  name         = var.tasks_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "run_id"
  range_key    = "task_id"

  attribute {
    name = "run_id"
    type = "S"
  }

  attribute {
    name = "task_id"
    type = "S"
  }

  attribute {
    name = "status"
    type = "S"
  }

  attribute {
    name = "updated_at"
    type = "S"
  }

  global_secondary_index {
    name            = "status-index"
    hash_key        = "status"
    range_key       = "updated_at"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.table_deletion_protection

  tags = local.tags
}

data "aws_dynamodb_table" "runs" {
  count = var.create_tables ? 0 : 1
  name  = var.runs_table_name

  lifecycle {
    postcondition {
      condition     = self.hash_key == "run_id" && contains([for gsi in self.global_secondary_index : gsi.name], "config-created-index")
      error_message = "The existing runs table must have hash key run_id and the GSI config-created-index (DESIGN.md section 2)."
    }
  }
}

data "aws_dynamodb_table" "tasks" {
  count = var.create_tables ? 0 : 1
  name  = var.tasks_table_name

  lifecycle {
    postcondition {
      condition     = self.hash_key == "run_id" && self.range_key == "task_id" && contains([for gsi in self.global_secondary_index : gsi.name], "status-index")
      error_message = "The existing tasks table must have keys run_id/task_id and the GSI status-index (DESIGN.md section 2)."
    }
  }
}

locals {
  runs_table_arn  = var.create_tables ? aws_dynamodb_table.runs[0].arn : data.aws_dynamodb_table.runs[0].arn
  tasks_table_arn = var.create_tables ? aws_dynamodb_table.tasks[0].arn : data.aws_dynamodb_table.tasks[0].arn
}
