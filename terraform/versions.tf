terraform {
  # 1.9: `terraform test` with mock_provider (1.7) and run-block state_key (1.9), and
  # variable validations that refer to other variables (1.9).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.70 or later, 6.x included.
      version = ">= 5.70"
    }
  }
}
