#!/usr/bin/env bash
# Lambda and custom action types with the real AWS CLI: a python function created from a zip,
# invoked (with its log tail), kept across kill -9, and its log read with `codepipeline-local logs`;
# a custom action type created, listed and polled.
# Usage: tests/cli/lambda.sh BINARY
set -euo pipefail
bin=${1:?usage: lambda.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
cli() { aws --endpoint-url "$endpoint" "$@"; }
# The AWS CLI v2 reads --payload as base64 unless told otherwise; v1 takes it raw.
raw=()
if aws --version 2>&1 | grep -q '^aws-cli/2'; then raw=(--cli-binary-format raw-in-base64-out); fi

cat > "$work/app.py" <<'PY'
import json
def handler(event, context):
    print("invoked with", json.dumps(event))
    return {"x": event["x"], "function": context.function_name}
PY
(cd "$work" && python3 -m zipfile -c fn.zip app.py)

start
check "create-function" "$(cli lambda create-function --function-name notify --runtime python3.12 --handler app.handler \
  --zip-file "fileb://$work/fn.zip" --role arn:aws:iam::000000000000:role/role | jq -r .State)" Active
cli lambda invoke --function-name notify --payload '{"x":1}' "${raw[@]}" --log-type Tail "$work/out.json" > "$work/invoke.json"
check "invoke payload" "$(jq -c . "$work/out.json")" '{"x":1,"function":"notify"}'
check "invoke status" "$(jq -r .StatusCode "$work/invoke.json")" 200
check "log tail" "$(jq -r .LogResult "$work/invoke.json" | base64 -d | grep -c 'invoked with {"x": 1}')" 1
check "list-functions" "$(cli lambda list-functions | jq -c '[.Functions[].FunctionName]')" '["notify"]'
if cli lambda get-function --function-name missing 2> "$work/err"; then echo "FAIL: a missing function was found"; exit 1; fi
check "missing function" "$(grep -o ResourceNotFoundException "$work/err")" ResourceNotFoundException

check "create-custom-action-type" "$(cli codepipeline create-custom-action-type --category Build --provider MyBuilder --action-version 1 \
  --settings '{"entityUrlTemplate": "http://ci/{Config:Project}", "executionUrlTemplate": "http://ci/run/{ExternalExecutionId}"}' \
  --configuration-properties name=Project,required=true,key=true,secret=false,queryable=true \
  --input-artifact-details minimumCount=1,maximumCount=1 --output-artifact-details minimumCount=0,maximumCount=1 \
  | jq -r .actionType.id.provider)" MyBuilder
check "list custom action types" "$(cli codepipeline list-action-types --action-owner-filter Custom | jq -c '[.actionTypes[].id.provider]')" '["MyBuilder"]'
check "poll-for-jobs" "$(cli codepipeline poll-for-jobs --action-type-id category=Build,owner=Custom,provider=MyBuilder,version=1 --query-param Project=web | jq -c .jobs)" '[]'
if cli codepipeline acknowledge-job --job-id 00000000-0000-0000-0000-000000000000 --nonce 1 2> "$work/err"; then echo "FAIL: an unknown job was acknowledged"; exit 1; fi
check "unknown job" "$(grep -o JobNotFoundException "$work/err")" JobNotFoundException

stop_hard
start
cli lambda invoke --function-name notify --payload '{"x":2}' "${raw[@]}" "$work/out.json" > /dev/null
check "invoke after kill -9" "$(jq -c .x "$work/out.json")" 2
check "custom type after kill -9" "$(cli codepipeline list-action-types --action-owner-filter Custom | jq -r '.actionTypes[0].id.version')" 1
check "logs by function name" "$("$bin" logs notify --endpoint "$endpoint" | grep -c '^START RequestId')" 2
stop_soft
check "logs offline" "$("$bin" logs notify --data-dir "$work/data" | grep -c 'invoked with')" 2
echo "lambda CLI script: all checks passed"
