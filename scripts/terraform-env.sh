#!/usr/bin/env bash
# Source me: points Terraform at the preinstalled provider mirror.
#   source scripts/terraform-env.sh
# Finds the hashicorp/aws provider binary at run time, takes the folder above its
# `registry.terraform.io` folder as the filesystem mirror root, writes a CLI config
# to <repo>/.tf-cli-config.tfrc and exports TF_CLI_CONFIG_FILE. The module uses no
# provider other than hashicorp/aws, so nothing else needs a mirror.
# ARC_TF_MIRROR, when set, is used as the mirror root instead of searching.
# Being sourced, it leaves the caller's shell options alone (no `set -e` here): every
# failure is reported and returned explicitly, so `source` itself fails.

_arc_tf_env() {
  local root provider mirror
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  mirror="${ARC_TF_MIRROR:-}"
  if [ -z "$mirror" ]; then
    provider="$(find / -name 'terraform-provider-aws_*' -type f -not -path '/proc/*' \
      -path '*/registry.terraform.io/hashicorp/aws/*' 2>/dev/null | sort | tail -n 1 || true)"
    if [ -z "$provider" ]; then
      echo "terraform-env.sh: no terraform-provider-aws_* binary under a registry.terraform.io folder on this machine" >&2
      return 1
    fi
    # <mirror>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*
    mirror="${provider%/registry.terraform.io/*}"
  fi
  if [ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
    echo "terraform-env.sh: $mirror is not a provider mirror (no registry.terraform.io/hashicorp/aws in it)" >&2
    return 1
  fi
  cat >"$root/.tf-cli-config.tfrc" <<TFRC || return 1
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
TFRC
  export ARC_TF_MIRROR="$mirror"
  export TF_CLI_CONFIG_FILE="$root/.tf-cli-config.tfrc"
  export TF_IN_AUTOMATION=1
  export CHECKPOINT_DISABLE=1
}

_arc_tf_env
_arc_tf_env_rc=$?
unset -f _arc_tf_env
if [ "$_arc_tf_env_rc" -ne 0 ]; then
  unset _arc_tf_env_rc
  # shellcheck disable=SC2317 # exit is reached when the file is run instead of sourced
  return 1 2>/dev/null || exit 1
fi
unset _arc_tf_env_rc
