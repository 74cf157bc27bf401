#!/usr/bin/env bash
# Renders terraform/state_machine.asl.json with templatefile(), exactly as the module
# does, with example ARNs and the module's default names, to
# build/state_machine.rendered.json (read by asl-validator and by the Rust ASL test).
#   scripts/render-state-machine.sh [OUTPUT]
# Needs only the terraform CLI (no provider).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/build/state_machine.rendered.json}"
work="$root/build/render-state-machine"
# shellcheck source=scripts/terraform-env.sh
source "$root/scripts/terraform-env.sh"
rm -rf "$work"
mkdir -p "$work" "$(dirname "$out")"

fn() { echo "arn:aws:lambda:us-east-1:123456789012:function:arc-benchmark-$1"; }
cat >"$work/main.tf" <<TF
output "definition" {
  value = templatefile("$root/terraform/state_machine.asl.json", {
    initialize_arn           = "$(fn initialize)"
    handle_error_arn         = "$(fn handle-error)"
    aggregate_arn            = "$(fn aggregate)"
    complete_arn             = "$(fn complete)"
    batch_job_queue_arn      = "arn:aws:batch:us-east-1:123456789012:job-queue/arc-benchmark"
    batch_job_definition_arn = "arn:aws:batch:us-east-1:123456789012:job-definition/arc-benchmark-worker:1"
    results_bucket           = "arc-benchmark-results-123456789012"
    runs_table               = "arc_benchmark_runs"
    tasks_table              = "arc_task_progress"
    map_max_concurrency        = 10
    batch_task_timeout_seconds = 21600
    execution_timeout_seconds  = 259200
  })
}
TF
(
  cd "$work"
  terraform init -input=false -no-color >/dev/null
  terraform apply -auto-approve -input=false -no-color >/dev/null
  terraform output -raw definition
) >"$out.tmp"
# Must be JSON; store it pretty-printed.
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); json.dump(d, open(sys.argv[2],"w"), indent=2); open(sys.argv[2],"a").write("\n")' "$out.tmp" "$out"
rm -f "$out.tmp"
echo "$out"
