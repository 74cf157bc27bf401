# The runs and tasks tables of docs/ARCHITECTURE.md, the sweeper's circuit breakers
# table and the worker's rate limits table, created here or adopted from an existing
# deployment (create_tables = false, create_breakers_table = false,
# create_rate_limits_table = false).

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

locals {
  # var.breakers_table_name, or `<name_prefix>-breakers`: one per deployment by default.
  breakers_table_name_input = coalesce(var.breakers_table_name, "${var.name_prefix}-breakers")
}

# The sweeper's per-config circuit breakers: one item per model config (hash key
# config_name) holding that config's breaker state. Only the sweeper reads and writes
# it (function_permissions.json, breakers_table). Its own create_ switch (not create_tables): an installation of the Python
# handler set has runs and tasks tables but no breakers table, so adopting those
# still creates this one.
resource "aws_dynamodb_table" "breakers" {
  count = var.create_breakers_table ? 1 : 0

  name         = local.breakers_table_name_input
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "config_name"

  attribute {
    name = "config_name"
    type = "S"
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

# The worker's per-provider rate limits (the Python set's arc_rate_limits). Only the
# worker's job definition uses it (DYNAMODB_RATE_LIMIT_TABLE, output
# rate_limits_table_name): none of the module's functions is granted access.
resource "aws_dynamodb_table" "rate_limits" {
  count = var.create_rate_limits_table ? 1 : 0

  name         = var.rate_limits_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "provider"

  attribute {
    name = "provider"
    type = "S"
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

# --- Adopted tables -----------------------------------------------------------
# The postconditions fail the plan before anything is deployed on a table the code
# cannot use: wrong keys, a missing index, an index with other keys, or one that does
# not project what the queries read.

locals {
  # What the sweeper reads from a status-index query item (besides the index keys).
  status_index_attributes = ["run_id", "task_id", "retry_count", "last_error_at", "updated_at", "retry_execution"]
}

data "aws_dynamodb_table" "runs" {
  count = var.create_tables ? 0 : 1
  name  = var.runs_table_name

  lifecycle {
    postcondition {
      condition     = self.hash_key == "run_id" && self.range_key == null
      error_message = "The existing runs table must have the hash key run_id and no range key (docs/ARCHITECTURE.md)."
    }

    postcondition {
      condition     = contains([for gsi in self.global_secondary_index : gsi.name], "config-created-index")
      error_message = "The existing runs table has no GSI config-created-index (hash key config_name, range key created_at, projection ALL): run `arcctl doctor` to see what is missing (docs/ARCHITECTURE.md)."
    }

    postcondition {
      condition = alltrue([for gsi in self.global_secondary_index :
        gsi.hash_key == "config_name" && gsi.range_key == "created_at" && gsi.projection_type == "ALL"
        if gsi.name == "config-created-index"
      ])
      error_message = "The GSI config-created-index of the existing runs table must have the hash key config_name, the range key created_at and the projection ALL (docs/ARCHITECTURE.md)."
    }
  }
}

data "aws_dynamodb_table" "tasks" {
  count = var.create_tables ? 0 : 1
  name  = var.tasks_table_name

  lifecycle {
    postcondition {
      condition     = self.hash_key == "run_id" && self.range_key == "task_id"
      error_message = "The existing tasks table must have the hash key run_id and the range key task_id (docs/ARCHITECTURE.md)."
    }

    postcondition {
      condition     = contains([for gsi in self.global_secondary_index : gsi.name], "status-index")
      error_message = "The existing tasks table has no GSI status-index, which the sweeper queries (the Python set's table definition has none). Add it with `arcctl migrate status-index`, wait until it is ACTIVE, then plan again."
    }

    postcondition {
      condition = alltrue([for gsi in self.global_secondary_index :
        gsi.hash_key == "status" && gsi.range_key == "updated_at" && (
          gsi.projection_type == "ALL" || (
            gsi.projection_type == "INCLUDE" &&
            length(setsubtract(local.status_index_attributes, concat(["run_id", "task_id", "status", "updated_at"], gsi.non_key_attributes == null ? [] : gsi.non_key_attributes))) == 0
          )
        )
        if gsi.name == "status-index"
      ])
      error_message = "The GSI status-index of the existing tasks table must have the hash key status, the range key updated_at and the projection ALL, or INCLUDE with at least run_id, task_id, retry_count, last_error_at, updated_at and retry_execution. Recreate it with `arcctl migrate status-index` (docs/ARCHITECTURE.md)."
    }
  }
}

data "aws_dynamodb_table" "breakers" {
  count = var.create_breakers_table ? 0 : 1
  name  = local.breakers_table_name_input

  lifecycle {
    postcondition {
      condition     = self.hash_key == "config_name" && self.range_key == null
      error_message = "The existing breakers table must have the hash key config_name and no range key (one item per model config, what the sweeper reads)."
    }
  }
}

data "aws_dynamodb_table" "rate_limits" {
  count = var.create_rate_limits_table ? 0 : 1
  name  = var.rate_limits_table_name

  lifecycle {
    postcondition {
      condition     = self.hash_key == "provider"
      error_message = "The existing rate limits table must have the hash key provider (what the worker reads)."
    }
  }
}

locals {
  runs_table_name        = var.create_tables ? aws_dynamodb_table.runs[0].name : data.aws_dynamodb_table.runs[0].name
  runs_table_arn         = var.create_tables ? aws_dynamodb_table.runs[0].arn : data.aws_dynamodb_table.runs[0].arn
  tasks_table_name       = var.create_tables ? aws_dynamodb_table.tasks[0].name : data.aws_dynamodb_table.tasks[0].name
  tasks_table_arn        = var.create_tables ? aws_dynamodb_table.tasks[0].arn : data.aws_dynamodb_table.tasks[0].arn
  breakers_table_name    = var.create_breakers_table ? aws_dynamodb_table.breakers[0].name : data.aws_dynamodb_table.breakers[0].name
  breakers_table_arn     = var.create_breakers_table ? aws_dynamodb_table.breakers[0].arn : data.aws_dynamodb_table.breakers[0].arn
  rate_limits_table_name = var.create_rate_limits_table ? aws_dynamodb_table.rate_limits[0].name : data.aws_dynamodb_table.rate_limits[0].name
  rate_limits_table_arn  = var.create_rate_limits_table ? aws_dynamodb_table.rate_limits[0].arn : data.aws_dynamodb_table.rate_limits[0].arn
}
