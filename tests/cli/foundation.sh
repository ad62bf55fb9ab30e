#!/usr/bin/env bash
# Drives the foundation commands with the real AWS CLI against the real server, including a
# kill -9 and a Ctrl-C restart, and checks every answer. Usage: tests/cli/foundation.sh BINARY
set -euo pipefail
bin=${1:?usage: foundation.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
cp_cli() { aws --endpoint-url "$endpoint" codepipeline "$@"; }
check() { # check DESCRIPTION ACTUAL EXPECTED
  if [ "$2" != "$3" ]; then echo "FAIL: $1: expected [$3], got [$2]"; exit 1; fi
  echo "ok: $1"
}

start
cp_cli create-pipeline --pipeline "file://$here/declaration.json" > "$work/created.json"
check "create-pipeline returns version 1" "$(jq -r .pipeline.version "$work/created.json")" 1
cp_cli get-pipeline --name pipeline > "$work/get1.json"
check "get-pipeline ARN" "$(jq -r .metadata.pipelineArn "$work/get1.json")" "arn:aws:codepipeline:eu-central-1:000000000000:pipeline"
check "list-pipelines" "$(cp_cli list-pipelines | jq -c '[.pipelines[] | [.name, .version]]')" '[["pipeline",1]]'
cp_cli update-pipeline --pipeline "file://$here/declaration-v2.json" > "$work/updated.json"
check "update-pipeline bumps the version" "$(jq -r .pipeline.version "$work/updated.json")" 2
cp_cli tag-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline --tags key=purpose,value=tutorial
check "list-tags-for-resource" "$(cp_cli list-tags-for-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline | jq -c .tags)" '[{"key":"purpose","value":"tutorial"}]'
if cp_cli get-pipeline --name missing 2> "$work/missing.err"; then echo "FAIL: a missing pipeline was found"; exit 1; fi
check "missing pipeline error" "$(grep -o 'PipelineNotFoundException' "$work/missing.err")" PipelineNotFoundException

cp_cli get-pipeline --name pipeline > "$work/before.json"
cp_cli list-pipelines > "$work/list-before.json"
stop_hard
start
check "get-pipeline after kill -9" "$(cp_cli get-pipeline --name pipeline | jq -S -c .)" "$(jq -S -c . "$work/before.json")"
check "list-pipelines after kill -9" "$(cp_cli list-pipelines | jq -S -c .)" "$(jq -S -c . "$work/list-before.json")"
check "version 1 after kill -9" "$(cp_cli get-pipeline --name pipeline --pipeline-version 1 | jq -c .pipeline)" "$(jq -c .pipeline "$work/get1.json")"
check "tags after kill -9" "$(cp_cli list-tags-for-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline | jq -c .tags)" '[{"key":"purpose","value":"tutorial"}]'

cp_cli untag-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline --tag-keys purpose
cp_cli delete-pipeline --name pipeline
stop_soft
start
check "deleted after Ctrl-C restart" "$(cp_cli list-pipelines | jq -c .pipelines)" "[]"
echo "foundation CLI script: all checks passed"
