#!/usr/bin/env bash
# The CDK, unchanged but for AWS_ENDPOINT_URL: `cdk bootstrap`, `cdk deploy` of a pipeline stack
# (S3 source -> CodeBuild -> manual approval -> S3 deploy) that then runs, `cdk diff` after a
# change, `cdk deploy` of the change, and `cdk destroy`.
# Usage: tests/cli/cdk.sh BINARY  (npm installs the fixture's packages into its node_modules)
set -euo pipefail
bin=${1:?usage: cdk.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
app="$here/../fixtures/cdk"
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
cli() { aws --endpoint-url "$endpoint" "$@"; }

(cd "$app" && npm install --no-audit --no-fund --silent >/dev/null)
cp "$app/app.js" "$app/cdk.json" "$work/"
ln -s "$app/node_modules" "$work/node_modules"
start
export AWS_ENDPOINT_URL="$endpoint" CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1
cdk() { (cd "$work" && timeout 300 ./node_modules/.bin/cdk "$@" 2>&1); }

out=$(cdk bootstrap aws://000000000000/eu-central-1) || { echo "$out"; echo "FAIL: cdk bootstrap"; exit 1; }
check "bootstrap" "$(cli cloudformation describe-stacks --stack-name CDKToolkit | jq -r '.Stacks[0].StackStatus')" CREATE_COMPLETE
check "bootstrap version parameter" "$(cli ssm get-parameter --name /cdk-bootstrap/hnb659fds/version | jq -r '.Parameter.Value | length > 0')" true

out=$(cdk deploy --require-approval never) || { echo "$out"; echo "FAIL: cdk deploy"; exit 1; }
stack=$(cli cloudformation describe-stacks --stack-name PipelineStack)
check "deploy" "$(echo "$stack" | jq -r '.Stacks[0].StackStatus')" CREATE_COMPLETE
output() { echo "$stack" | jq -r ".Stacks[0].Outputs[] | select(.OutputKey == \"$1\") | .OutputValue"; }
pipeline=$(output PipelineName) source=$(output SourceBucket) target=$(output TargetBucket)

# The pipeline the CDK made runs: a source zip, a build, an approval, a deployment.
echo hi > "$work/index.html"
(cd "$work" && python3 -c "import zipfile; z = zipfile.ZipFile('app.zip', 'w'); z.write('index.html'); z.close()")
cli s3 cp "$work/app.zip" "s3://$source/app.zip" > /dev/null
execution=$(cli codepipeline start-pipeline-execution --name "$pipeline" | jq -r .pipelineExecutionId)
for _ in $(seq 1 300); do
  token=$(cli codepipeline get-pipeline-state --name "$pipeline" | jq -r '.stageStates[] | select(.stageName == "Approve") | .actionStates[0].latestExecution.token // empty')
  [ -n "$token" ] && break
  sleep 0.1
done
[ -n "$token" ] || { echo "FAIL: the pipeline never reached its approval"; exit 1; }
cli codepipeline put-approval-result --pipeline-name "$pipeline" --stage-name Approve --action-name Approve \
  --token "$token" --result summary=ok,status=Approved > /dev/null
for _ in $(seq 1 300); do
  status=$(cli codepipeline get-pipeline-execution --pipeline-name "$pipeline" --pipeline-execution-id "$execution" | jq -r .pipelineExecution.status)
  [ "$status" != InProgress ] && break
  sleep 0.1
done
check "the pipeline runs" "$status" Succeeded
check "the build's file deployed" "$(cli s3 cp "s3://$target/built.txt" -)" built

# A change: cdk diff names it, cdk deploy applies it.
export BUILD_MESSAGE=rebuilt
out=$(cdk diff) || true
echo "$out" | grep -q "Number of stacks with differences: 1" || { echo "$out"; echo "FAIL: cdk diff"; exit 1; }
echo "ok: cdk diff shows the change"
out=$(cdk deploy --require-approval never) || { echo "$out"; echo "FAIL: cdk deploy of the change"; exit 1; }
check "update" "$(cli cloudformation describe-stacks --stack-name PipelineStack | jq -r '.Stacks[0].StackStatus')" UPDATE_COMPLETE
project=$(cli cloudformation describe-stack-resources --stack-name PipelineStack | jq -r '.StackResources[] | select(.ResourceType == "AWS::CodeBuild::Project") | .PhysicalResourceId')
cli codebuild batch-get-projects --names "$project" | jq -r '.projects[0].source.buildspec' | grep -q rebuilt \
  || { echo "FAIL: the project's buildspec did not change"; exit 1; }
echo "ok: the change is deployed"

# cdk destroy, once the buckets it would delete are empty (as on AWS).
for bucket in "$source" "$target"; do
  cli s3api list-object-versions --bucket "$bucket" | jq -r '((.Versions // []) + (.DeleteMarkers // []))[] | [.Key, .VersionId] | @tsv' |
    while IFS=$'\t' read -r key version; do
      cli s3api delete-object --bucket "$bucket" --key "$key" --version-id "$version" > /dev/null
    done
  cli s3 rm "s3://$bucket" --recursive > /dev/null
done
out=$(cdk destroy --force) || { echo "$out"; echo "FAIL: cdk destroy"; exit 1; }
check "destroy" "$(cli codepipeline list-pipelines | jq -r '.pipelines | length')" 0
check "stack gone" "$(cli cloudformation list-stacks --stack-status-filter DELETE_COMPLETE | jq -r '.StackSummaries[0].StackName')" PipelineStack
echo "cdk CLI script: all checks passed"
