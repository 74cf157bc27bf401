# The results bucket: aggregate writes `runs/<run_id>/results/aggregated.json`,
# initialize the task list the ProcessTasks Map reads (under `runs/`), the Map its
# child results (under `map-results/`). Created here (versioned, encrypted, private,
# TLS only) or an existing bucket.

locals {
  results_bucket_name = coalesce(var.results_bucket_name, "${var.name_prefix}-results-${local.account_id}")
  results_bucket_arn  = "arn:${local.partition}:s3:::${local.results_bucket_name}"
}

data "aws_s3_bucket" "existing" {
  count = var.create_results_bucket ? 0 : 1

  bucket = local.results_bucket_name

  lifecycle {
    precondition {
      condition     = var.results_bucket_name != null
      error_message = "results_bucket_name is required when create_results_bucket = false."
    }
  }
}

resource "aws_s3_bucket" "results" {
  count = var.create_results_bucket ? 1 : 0

  bucket        = local.results_bucket_name
  force_destroy = var.results_bucket_force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_versioning" "results" {
  count = var.create_results_bucket ? 1 : 0

  bucket = aws_s3_bucket.results[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  count = var.create_results_bucket ? 1 : 0

  bucket = aws_s3_bucket.results[0].id

  rule {
    apply_server_side_encryption_by_default {
      # The AWS-managed key (aws/s3): usable by any principal of the account that
      # has the S3 permission, so the functions need no kms:* grant.
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  count = var.create_results_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.results[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  count = var.create_results_bucket ? 1 : 0

  bucket = aws_s3_bucket.results[0].id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.results]
}

data "aws_iam_policy_document" "results_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.results_bucket_arn,
      "${local.results_bucket_arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "results" {
  count = var.create_results_bucket ? 1 : 0

  bucket = aws_s3_bucket.results[0].id
  policy = data.aws_iam_policy_document.results_tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.results]
}
