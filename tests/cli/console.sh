#!/usr/bin/env bash
# The console in a real browser (Debian's chromium driven by npm's playwright-core): pipelines
# made with boto3, then tests/console/console.mjs releases, watches, approves with a comment,
# disables a transition and follows a build's log from the pages; boto3 then finds the comment
# in ListActionExecutions and the reason on the transition. The pipeline page's screenshot is
# left in $CONSOLE_SCREENSHOT (default target/console-pipeline.png).
# Usage: tests/cli/console.sh BINARY
set -euo pipefail
bin=${1:?usage: console.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
driver="$here/../console"
shot=${CONSOLE_SCREENSHOT:-$here/../../target/console-pipeline.png}
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"

(cd "$driver" && npm install --no-audit --no-fund --silent >/dev/null)
start
check "the start-up output names the console" "$(grep -c "^codepipeline-local console at $endpoint/_console/\$" "$work/out.log")" 1

# Two pipelines through the SDK: S3 source -> manual approval -> S3 deploy, and S3 source ->
# CodeBuild (a build that writes one line, waits, writes another).
python3 - "$endpoint" <<'PY'
import io, sys, zipfile, boto3
endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="eu-central-1",
          aws_access_key_id="test", aws_secret_access_key="test")
s3, cp, cb = (boto3.client(s, **kw) for s in ("s3", "codepipeline", "codebuild"))
for b in ("console-source", "console-artifacts", "console-site"):
    s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
s3.put_bucket_versioning(Bucket="console-source", VersioningConfiguration={"Status": "Enabled"})
zipped = io.BytesIO()
with zipfile.ZipFile(zipped, "w") as z:
    z.writestr("index.html", "<h1>console</h1>\n")
s3.put_object(Bucket="console-source", Key="app.zip", Body=zipped.getvalue())
cb.create_project(
    name="console-build", serviceRole="arn:aws:iam::000000000000:role/build",
    source={"type": "CODEPIPELINE",
            "buildspec": "version: 0.2\nphases:\n  build:\n    commands:\n      - echo first line\n      - sleep 8\n      - echo last line\n"},
    artifacts={"type": "CODEPIPELINE"},
    environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"})
source = {"name": "Source", "actions": [{
    "name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
    "configuration": {"S3Bucket": "console-source", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
    "outputArtifacts": [{"name": "app"}]}]}
def pipeline(name, stages):
    cp.create_pipeline(pipeline={
        "name": name, "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/pipeline",
        "artifactStore": {"type": "S3", "location": "console-artifacts"},
        "stages": [source] + stages})
    # The creation's own execution is stopped: the browser releases the one it watches.
    for e in cp.list_pipeline_executions(pipelineName=name)["pipelineExecutionSummaries"]:
        cp.stop_pipeline_execution(pipelineName=name, pipelineExecutionId=e["pipelineExecutionId"], abandon=True)
pipeline("approved", [
    {"name": "Approve", "actions": [{"name": "Gate",
        "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}}]},
    {"name": "Deploy", "actions": [{"name": "Deploy",
        "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
        "configuration": {"BucketName": "console-site", "Extract": "true"},
        "inputArtifacts": [{"name": "app"}]}]}])
pipeline("built", [
    {"name": "Build", "actions": [{"name": "Build",
        "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
        "configuration": {"ProjectName": "console-build"}, "inputArtifacts": [{"name": "app"}]}]}])
PY

mkdir -p "$(dirname "$shot")"
if ! node "$driver/console.mjs" "$endpoint" approved built "$shot"; then
  # What the API shows, to tell a page that did not follow from a pipeline that did not move.
  python3 - "$endpoint" <<'PY' || true
import json, sys, boto3
cp = boto3.client("codepipeline", endpoint_url=sys.argv[1], region_name="eu-central-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
for name in ("approved", "built"):
    print(json.dumps(cp.list_pipeline_executions(pipelineName=name)["pipelineExecutionSummaries"], default=str))
    print(json.dumps(cp.get_pipeline_state(name=name)["stageStates"], default=str))
PY
  exit 1
fi
check "the screenshot was written" "$(test -s "$shot" && echo yes)" yes

# What the page did is what the API shows.
python3 - "$endpoint" <<'PY'
import sys, boto3
cp = boto3.client("codepipeline", endpoint_url=sys.argv[1], region_name="eu-central-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
runs = cp.list_action_executions(pipelineName="approved")["actionExecutionDetails"]
gate = [r for r in runs if r["actionName"] == "Gate" and r["status"] == "Succeeded"]
assert len(gate) == 1, runs
summary = gate[0]["output"]["executionResult"]["externalExecutionSummary"]
assert summary == "Approved: Ship it, from the console", summary
print("ok: the comment given on the page is in ListActionExecutions")
executions = cp.list_pipeline_executions(pipelineName="approved")["pipelineExecutionSummaries"]
released = [e for e in executions if e["trigger"]["triggerType"] == "StartPipelineExecution"]
# Newest first: the one released by keyboard waits at the approval, the one approved succeeded.
assert [e["status"] for e in released] == ["InProgress", "Succeeded"], executions
print("ok: the execution released from the page succeeded, the one released by keyboard waits")
stages = cp.get_pipeline_state(name="approved")["stageStates"]
deploy = [s for s in stages if s["stageName"] == "Deploy"][0]["inboundTransitionState"]
assert deploy["enabled"] is False and deploy["disabledReason"] == "Release freeze", deploy
print("ok: the transition disabled on the page, with its reason")
PY
