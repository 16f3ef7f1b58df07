#!/usr/bin/env bash
# Builds shoal-lambda with cargo-lambda and deploys infra/template.yaml with AWS SAM.
#
#   bash infra/deploy.sh --bucket BUCKET [--prefix shoal/] [--arch arm64|x86_64]
#                        [--memory 2048] [--stack shoal-worker] [--create-bucket]
#                        [--input-bucket B] [--input-prefix P] [--intermediate-days 7]
#
# Needs: cargo-lambda (`pip install cargo-lambda` or `cargo install cargo-lambda`), the AWS SAM
# CLI (`pip install aws-sam-cli`), the AWS CLI, and credentials allowed to create the stack.
# Idempotent: re-running updates the stack in place.
set -euo pipefail
cd "$(dirname "$0")/.."

bucket=""; prefix="shoal/"; arch="arm64"; memory=2048; stack="shoal-worker"; create="false"
input_bucket=""; input_prefix=""; days=7
usage() { sed -n '2,10p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bucket) bucket="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --memory) memory="$2"; shift 2 ;;
    --stack) stack="$2"; shift 2 ;;
    --create-bucket) create="true"; shift ;;
    --input-bucket) input_bucket="$2"; shift 2 ;;
    --input-prefix) input_prefix="$2"; shift 2 ;;
    --intermediate-days) days="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$bucket" ] || { echo "--bucket is required" >&2; usage; }
case "$arch" in arm64) target_flag="--arm64" ;; x86_64) target_flag="--x86-64" ;; *) echo "--arch: arm64 or x86_64" >&2; exit 2 ;; esac
case "$prefix" in */) ;; *) prefix="$prefix/" ;; esac
for tool in cargo-lambda sam aws; do
  command -v "$tool" >/dev/null || { echo "missing '$tool' (see infra/README.md)" >&2; exit 1; }
done

echo "== building shoal-lambda for $arch (cargo lambda build --release $target_flag)"
cargo lambda build --release "$target_flag" -p shoal-worker --bin shoal-lambda
test -f target/lambda/shoal-lambda/bootstrap

echo "== deploying stack $stack"
sam deploy --template-file infra/template.yaml --stack-name "$stack" --resolve-s3 \
  --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
  --parameter-overrides "Architecture=$arch" "MemorySize=$memory" "JobBucket=$bucket" \
    "JobPrefix=$prefix" "InputBucket=$input_bucket" "InputPrefix=$input_prefix" \
    "CreateBucket=$create" "IntermediateDays=$days"

if [ "$create" = "false" ]; then
  echo "== lifecycle rule: expire s3://$bucket/${prefix}data/ and specs/ after $days days"
  # Merges with nothing: this replaces the bucket's lifecycle configuration. Skip it (and set
  # the rule yourself) if the bucket has other rules.
  aws s3api put-bucket-lifecycle-configuration --bucket "$bucket" --lifecycle-configuration "{
    \"Rules\": [
      {\"ID\": \"shoal-intermediates\", \"Status\": \"Enabled\", \"Filter\": {\"Prefix\": \"${prefix}data/\"}, \"Expiration\": {\"Days\": $days}},
      {\"ID\": \"shoal-specs\", \"Status\": \"Enabled\", \"Filter\": {\"Prefix\": \"${prefix}specs/\"}, \"Expiration\": {\"Days\": $days}}
    ]}"
fi

function_name=$(aws cloudformation describe-stacks --stack-name "$stack" \
  --query "Stacks[0].Outputs[?OutputKey=='FunctionName'].OutputValue" --output text)
echo
echo "deployed: $function_name"
echo "run a job on it:"
echo "  shoal run JOB.toml --executor lambda --function $function_name --root s3://$bucket/${prefix}JOB_NAME"
