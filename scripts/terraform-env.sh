#!/usr/bin/env bash
# Source me: points Terraform at the preinstalled provider mirror.
#   source scripts/terraform-env.sh
# Finds the hashicorp/aws provider binary at run time, takes the folder above its
# `registry.terraform.io` folder as the filesystem mirror root, writes a CLI config
# to $repo/.tf-cli-config.tfrc and exports TF_CLI_CONFIG_FILE. The module uses no
# provider other than hashicorp/aws, so nothing else needs a mirror.
set -euo pipefail

_arc_tf_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_arc_tf_find_mirror() {
  local provider
  provider="$(find / -name 'terraform-provider-aws_*' -type f -not -path '/proc/*' \
    -path '*/registry.terraform.io/hashicorp/aws/*' 2>/dev/null | sort | tail -n 1 || true)"
  if [ -z "$provider" ]; then
    echo "terraform-env.sh: no terraform-provider-aws_* binary under a registry.terraform.io folder on this machine" >&2
    return 1
  fi
  # .../<mirror>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*
  local dir="${provider%/registry.terraform.io/*}"
  echo "$dir"
}

ARC_TF_MIRROR="${ARC_TF_MIRROR:-$(_arc_tf_find_mirror)}"
cat >"$_arc_tf_root/.tf-cli-config.tfrc" <<TFRC
provider_installation {
  filesystem_mirror {
    path    = "$ARC_TF_MIRROR"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
TFRC
export ARC_TF_MIRROR
export TF_CLI_CONFIG_FILE="$_arc_tf_root/.tf-cli-config.tfrc"
export TF_IN_AUTOMATION=1
export CHECKPOINT_DISABLE=1
unset _arc_tf_root
