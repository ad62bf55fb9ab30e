#!/usr/bin/env bash
# The CodePipeline tutorial, verbatim but for `aws --endpoint-url …` in place of `awslocal`:
# buckets, versioning, the source file, the IAM role and policy, the pipeline, its execution,
# the deployed file and the action executions. Usage: tests/cli/tutorial.sh BINARY
set -euo pipefail
bin=${1:?usage: tutorial.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
start
awslocal() { aws --endpoint-url "$endpoint" "$@"; }
cd "$work"

awslocal s3 mb s3://source-bucket
awslocal s3 mb s3://target-bucket
awslocal s3api put-bucket-versioning --bucket source-bucket --versioning-configuration Status=Enabled
echo "Hello LocalStack!" > file
awslocal s3 cp file s3://source-bucket
awslocal s3 mb s3://artifact-store-bucket
cat > role.json <<'JSON'
{ "Version": "2012-10-17", "Statement": [ { "Effect": "Allow", "Principal": { "Service": "codepipeline.amazonaws.com" }, "Action": "sts:AssumeRole" } ]}
JSON
awslocal iam create-role --role-name role --assume-role-policy-document file://role.json | jq .Role.Arn
cat > policy.json <<'JSON'
{ "Version": "2012-10-17", "Statement": [ { "Effect": "Allow", "Action": [ "s3:*" ], "Resource": "*" } ]}
JSON
awslocal iam put-role-policy --role-name role --policy-name policy --policy-document file://policy.json
cp "$here/declaration.json" declaration.json
awslocal codepipeline create-pipeline --pipeline file://./declaration.json > /dev/null

# The execution CreatePipeline started (just after it answered); wait (at most 30 s) for it to end.
for _ in $(seq 1 300); do
  status=$(awslocal codepipeline list-pipeline-executions --pipeline-name pipeline | jq -r '.pipelineExecutionSummaries[0].status')
  [ "$status" != "InProgress" ] && [ "$status" != "null" ] && break
  sleep 0.1
done
check "execution status" "$status" Succeeded
check "trigger" "$(awslocal codepipeline list-pipeline-executions --pipeline-name pipeline | jq -r '.pipelineExecutionSummaries[0].trigger.triggerType')" CreatePipeline
awslocal s3 cp s3://target-bucket/output-file output-file
check "deployed file" "$(cat output-file)" "Hello LocalStack!"
awslocal codepipeline list-action-executions --pipeline-name pipeline > actions.json
check "action executions" "$(jq -c '[.actionExecutionDetails[] | [.stageName, .actionName, .status]]' actions.json)" '[["stage2","action1","Succeeded"],["stage1","action1","Succeeded"]]'
check "deploy input artifact bucket" "$(jq -r '.actionExecutionDetails[0].input.inputArtifacts[0].s3location.bucket' actions.json)" artifact-store-bucket
check "deploy resolved configuration" "$(jq -c '.actionExecutionDetails[0].input.resolvedConfiguration' actions.json)" '{"BucketName":"target-bucket","Extract":"false","ObjectKey":"output-file"}'
check "deploy summary" "$(jq -r '.actionExecutionDetails[0].output.executionResult.externalExecutionSummary' actions.json)" "Deployment Succeeded"
check "region" "$(jq -r '.actionExecutionDetails[0].input.region' actions.json)" eu-central-1
awslocal codepipeline tag-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline --tags key=purpose,value=tutorial
check "tags" "$(awslocal codepipeline list-tags-for-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline | jq -c .tags)" '[{"key":"purpose","value":"tutorial"}]'
awslocal codepipeline untag-resource --resource-arn arn:aws:codepipeline:eu-central-1:000000000000:pipeline --tag-keys purpose
echo "tutorial CLI script: all checks passed"
