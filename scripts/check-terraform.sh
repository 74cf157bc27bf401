#!/usr/bin/env bash
# The Terraform checks of arc-orchestrator (run by scripts/test.sh, hence by .ci/run):
#   1. terraform fmt -check -recursive terraform
#   2. terraform init -backend=false + validate: the module, examples/sandbox, examples/local;
#      terraform test of the module (mocked provider: names, environment, tables, IAM
#      statements and roles, the rendered state machine, alarms, variable validation,
#      adoption postconditions)
#   3. checkov (pinned, own venv) over terraform/: zero failed checks; skips only in terraform/.checkov.yaml
#   4. asl-validator (pinned in tools/package.json) on the rendered state machine
#      (scripts/render-state-machine.sh -> build/state_machine.rendered.json)
#   5. terraform apply of examples/local against a fresh moto server (through
#      scripts/local-aws-proxy.py), then $ARC_DEPLOYED_TEST_CMD if set, with
#      AWS_ENDPOINT_URL, RUNS_TABLE, TASKS_TABLE, BREAKERS_TABLE, S3_BUCKET,
#      STATE_MACHINE_ARN exported from the outputs; a plan of a second deployment
#      adopting those tables and that bucket (examples/local, plan_adoption = true);
#      then terraform destroy.
# Any failure stops the script with a non-zero exit.
# ARC_LAMBDA_ZIP_DIR: use these zips for the local apply instead of packaging target/debug.
set -euo pipefail
CHECKOV_VERSION="3.3.30"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/terraform-env.sh
source scripts/terraform-env.sh

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "check-terraform.sh: FAILED: $*" >&2; exit 1; }

step "terraform fmt -check -recursive terraform"
terraform fmt -check -recursive -diff terraform || fail "terraform fmt (run: terraform fmt -recursive terraform)"

for dir in terraform terraform/examples/sandbox terraform/examples/local; do
  step "terraform init -backend=false && terraform validate ($dir)"
  terraform -chdir="$dir" init -backend=false -input=false -no-color >/dev/null || fail "terraform init in $dir"
  terraform -chdir="$dir" validate -no-color || fail "terraform validate in $dir"
done

step "terraform test (the module against a mocked provider: terraform/tests/*.tftest.hcl)"
mkdir -p "$root/build"
tf_test_log="$root/build/terraform-test.txt"
terraform -chdir=terraform test -no-color >"$tf_test_log" 2>&1 || {
  cat "$tf_test_log" >&2
  fail "terraform test in terraform/ (log: $tf_test_log)"
}
cat "$tf_test_log"
tf_test_summary="$(grep -E '^Success!' "$tf_test_log" | tail -n 1)"
[ -n "$tf_test_summary" ] || fail "terraform test printed no summary ($tf_test_log)"

step "the log line and metric names terraform/monitoring.tf reads are the ones the code writes"
# monitoring.tf: the TasksFailedPermanently filter matches handle-error's "failure recorded"
# line with status FAILED_PERMANENT; the alarms and dashboard read these metric names.
coupling=(
  'handlers/src/handle_error.rs:"failure recorded"'
  'handlers/src/handle_error.rs:FailureOutcome::FailedPermanent'
  'shared/src/contracts.rs:"FAILED_PERMANENT"'
  'handlers/src/complete.rs:"ConfigName"'
)
for metric in Accuracy TotalCostUSD TasksCompleted TasksFailed; do coupling+=("handlers/src/complete.rs:\"$metric\""); done
for metric in TasksRequeued TasksDeferred RunsRetried RunsRepaired SweepErrors BreakersOpen; do coupling+=("shared/src/contracts.rs:\"$metric\""); done
for pair in "${coupling[@]}"; do
  where="${pair%%:*}" literal="${pair#*:}"
  grep -rqF -- "$literal" "$where" || fail "monitoring.tf relies on $literal in $where, which no longer has it"
done
echo "${#coupling[@]} literals found"

step "checkov $CHECKOV_VERSION over terraform/"
venv="$root/.venv-checkov"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('checkov') != '$CHECKOV_VERSION')" 2>/dev/null; then
  echo "installing checkov==$CHECKOV_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
checkov_log="$root/build/checkov.txt"
mkdir -p "$root/build"
set +e
"$venv/bin/checkov" -d terraform --framework terraform --skip-download \
  --config-file terraform/.checkov.yaml --compact --quiet >"$checkov_log" 2>&1
checkov_rc=$?
set -e
cat "$checkov_log"
checkov_summary="$(grep -E '^Passed checks:' "$checkov_log" | head -n 1 || true)"
[ "$checkov_rc" -eq 0 ] || fail "checkov (exit $checkov_rc)"
[ -n "$checkov_summary" ] || fail "checkov printed no summary"
skipped_ids="$(grep -cE '^\s*-\s*CKV' terraform/.checkov.yaml || true)"
echo "checkov: $checkov_summary (checks skipped by terraform/.checkov.yaml: $skipped_ids)"

step "asl-validator on the rendered state machine"
(cd tools && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in tools/"
rendered="$(scripts/render-state-machine.sh)"
tools/node_modules/.bin/asl-validator --json-path "$rendered" || fail "asl-validator on $rendered"
asl_result="valid ($rendered)"

step "terraform apply of examples/local against moto"
local_dir="terraform/examples/local"
zip_dir="${ARC_LAMBDA_ZIP_DIR:-}"
if [ -z "$zip_dir" ]; then
  zip_dir="$(scripts/package-local.sh)" || fail "packaging the host-built binaries (scripts/package-local.sh)"
fi
case "$(uname -m)" in
  x86_64 | amd64) local_arch="x86_64" ;;
  aarch64 | arm64) local_arch="arm64" ;;
  *) fail "unsupported host architecture $(uname -m)" ;;
esac

moto_pid="$root/.moto-terraform.pid"
proxy_pid=""
proxy_url_file="$root/build/local-aws-proxy.url"
applied=0
tf_vars=()

cleanup() {
  local rc=$?
  if [ "$applied" -eq 1 ]; then
    echo "check-terraform.sh: destroying what the failed run applied" >&2
    terraform -chdir="$local_dir" destroy -auto-approve -input=false -no-color "${tf_vars[@]}" >/dev/null 2>&1 || true
  fi
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  scripts/moto.sh stop "$moto_pid"
  exit "$rc"
}
trap cleanup EXIT

endpoint="$(scripts/moto.sh start "$moto_pid")" || fail "starting moto"
rm -f "$proxy_url_file"
python3 scripts/local-aws-proxy.py "$endpoint" "$proxy_url_file" &
proxy_pid=$!
for _ in $(seq 1 50); do [ -s "$proxy_url_file" ] && break; sleep 0.1; done
[ -s "$proxy_url_file" ] || fail "local-aws-proxy.py did not start"
proxy_url="$(cat "$proxy_url_file")"
echo "moto at $endpoint, Terraform through $proxy_url"

tf_vars=(-var "endpoint=$proxy_url" -var "lambda_zip_dir=$zip_dir" -var "lambda_architecture=$local_arch")
rm -f "$local_dir"/terraform.tfstate "$local_dir"/terraform.tfstate.backup
apply_log="$root/build/terraform-local-apply.txt"
applied=1
terraform -chdir="$local_dir" apply -auto-approve -input=false -no-color "${tf_vars[@]}" >"$apply_log" 2>&1 || {
  tail -n 60 "$apply_log" >&2
  fail "terraform apply of $local_dir (full log: $apply_log)"
}
apply_summary="$(grep -E '^Apply complete!' "$apply_log")"
echo "$apply_summary"

step "terraform plan of examples/local is empty after apply"
terraform -chdir="$local_dir" plan -detailed-exitcode -input=false -no-color "${tf_vars[@]}" >"$root/build/terraform-local-plan.txt" 2>&1 || {
  cat "$root/build/terraform-local-plan.txt" >&2
  fail "a second plan of $local_dir is not empty (or failed)"
}
echo "no changes"

step "terraform plan of a deployment adopting the applied tables and bucket"
adopt_plan="$root/build/terraform-local-adopt-plan.txt"
terraform -chdir="$local_dir" plan -input=false -no-color "${tf_vars[@]}" -var plan_adoption=true >"$adopt_plan" 2>&1 || {
  tail -n 40 "$adopt_plan" >&2
  fail "the adoption plan (create_tables = false, create_results_bucket = false) failed"
}
if grep -qE 'module\.adopting\[0\]\.aws_(dynamodb_table|s3_bucket)[a-z_]*\.' "$adopt_plan"; then
  fail "the adopting deployment plans to create a table or bucket ($adopt_plan)"
fi
grep -q 'module.adopting\[0\].aws_lambda_function.this\["sweeper"\] will be created' "$adopt_plan" ||
  fail "the adoption plan does not deploy the functions ($adopt_plan)"
grep -E '^Plan:' "$adopt_plan"

out() { terraform -chdir="$local_dir" output -raw "$1"; }
export AWS_ENDPOINT_URL="$endpoint"
export AWS_ACCESS_KEY_ID="test" AWS_SECRET_ACCESS_KEY="test" AWS_REGION="us-east-1" AWS_DEFAULT_REGION="us-east-1"
RUNS_TABLE="$(out runs_table_name)"
TASKS_TABLE="$(out tasks_table_name)"
BREAKERS_TABLE="$(out breakers_table_name)"
S3_BUCKET="$(out results_bucket_name)"
STATE_MACHINE_ARN="$(out state_machine_arn)"
export RUNS_TABLE TASKS_TABLE BREAKERS_TABLE S3_BUCKET STATE_MACHINE_ARN
echo "RUNS_TABLE=$RUNS_TABLE TASKS_TABLE=$TASKS_TABLE BREAKERS_TABLE=$BREAKERS_TABLE S3_BUCKET=$S3_BUCKET STATE_MACHINE_ARN=$STATE_MACHINE_ARN"

if [ -n "${ARC_DEPLOYED_TEST_CMD:-}" ]; then
  step "deployed test: $ARC_DEPLOYED_TEST_CMD"
  bash -c "$ARC_DEPLOYED_TEST_CMD" || fail "the deployed test ($ARC_DEPLOYED_TEST_CMD)"
else
  echo "ARC_DEPLOYED_TEST_CMD is not set: no test against the deployed tables"
fi

step "terraform destroy of examples/local"
terraform -chdir="$local_dir" destroy -auto-approve -input=false -no-color "${tf_vars[@]}" >"$root/build/terraform-local-destroy.txt" 2>&1 || {
  tail -n 40 "$root/build/terraform-local-destroy.txt" >&2
  fail "terraform destroy of $local_dir"
}
applied=0
rm -f "$local_dir"/terraform.tfstate "$local_dir"/terraform.tfstate.backup
grep -E '^Destroy complete!' "$root/build/terraform-local-destroy.txt"

step "terraform checks passed"
echo "terraform test: $tf_test_summary"
echo "apply:         $apply_summary"
echo "checkov:       $checkov_summary"
echo "asl-validator: $asl_result"
