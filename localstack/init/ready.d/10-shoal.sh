#!/bin/bash
# LocalStack ready hook: the `shoal` bucket with the intermediates lifecycle rule, and the
# `shoal-worker` function from target/lambda/shoal-lambda/bootstrap (cargo lambda build).
set -euo pipefail
awslocal s3 mb s3://shoal 2>/dev/null || true
awslocal s3api put-bucket-lifecycle-configuration --bucket shoal --lifecycle-configuration '{
  "Rules": [
    {"ID": "shoal-intermediates", "Status": "Enabled", "Filter": {"Prefix": "jobs/"}, "Expiration": {"Days": 7}}
  ]}'
if [ ! -f /opt/shoal-lambda/bootstrap ]; then
  echo "no /opt/shoal-lambda/bootstrap: build it with cargo lambda build --release --x86-64 -p shoal-worker --bin shoal-lambda" >&2
  exit 0
fi
cd /tmp && rm -f shoal-lambda.zip && python3 -c "
import zipfile
with zipfile.ZipFile('shoal-lambda.zip', 'w') as z:
    info = zipfile.ZipInfo('bootstrap'); info.external_attr = 0o755 << 16
    z.writestr(info, open('/opt/shoal-lambda/bootstrap', 'rb').read())
"
awslocal lambda delete-function --function-name shoal-worker 2>/dev/null || true
awslocal lambda create-function --function-name shoal-worker --runtime provided.al2023 \
  --handler bootstrap --architectures x86_64 --memory-size 2048 --timeout 900 \
  --zip-file fileb:///tmp/shoal-lambda.zip --role arn:aws:iam::000000000000:role/shoal-worker \
  --environment 'Variables={SHOAL_CACHE_DIR=/tmp/shoal-components,AWS_ENDPOINT_URL=http://localhost.localstack.cloud:4566}'
echo "LocalStack: bucket shoal and function shoal-worker ready"
