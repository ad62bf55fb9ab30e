#!/usr/bin/env bash
# Git sources with the real AWS CLI and git, as the README shows them: a connection and a V2
# pipeline whose trigger a `git commit` in a local repository fires, and one whose pull-request
# filter `codepipeline-local pull-request open` fires; an embedded CodeCommit repository that
# `git push` over HTTP fills and whose push starts its pipelines, polling or through an
# EventBridge rule made with `aws events`; all kept across kill -9.
# Usage: tests/cli/git.sh BINARY
set -euo pipefail
bin=${1:?usage: git.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
cli() { aws --endpoint-url "$endpoint" "$@"; }
export GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.com GIT_COMMITTER_NAME=Dev GIT_COMMITTER_EMAIL=dev@example.com
export CODEPIPELINE_LOCAL_GIT_REPOS_DIR="$work/src"

# Waits (at most 30 s) until PIPELINE has N executions; prints the newest one's trigger type.
executions() {
  for _ in $(seq 1 300); do
    count=$(cli codepipeline list-pipeline-executions --pipeline-name "$1" | jq '.pipelineExecutionSummaries | length')
    if [ "$count" -ge "$2" ]; then
      cli codepipeline list-pipeline-executions --pipeline-name "$1" | jq -r '.pipelineExecutionSummaries[0].trigger.triggerType'
      return 0
    fi
    sleep 0.1
  done
  echo "FAIL: $1 never had $2 executions"; exit 1
}

# Waits (at most 30 s) until PIPELINE's newest execution succeeded.
succeeded() {
  for _ in $(seq 1 300); do
    [ "$(cli codepipeline list-pipeline-executions --pipeline-name "$1" | jq -r '.pipelineExecutionSummaries[0].status')" = Succeeded ] && return 0
    sleep 0.1
  done
  echo "FAIL: $1's newest execution did not succeed"; exit 1
}

mkdir -p "$work/src/acme/web"
git -C "$work/src/acme/web" init -q -b main
echo v1 > "$work/src/acme/web/index.html"
git -C "$work/src/acme/web" add . && git -C "$work/src/acme/web" commit -q -m first

start
for b in target-bucket artifact-store-bucket; do cli s3 mb "s3://$b" > /dev/null; done
arn=$(cli codestar-connections create-connection --provider-type GitHub --connection-name local | jq -r .ConnectionArn)
check "connection" "$(cli codeconnections get-connection --connection-arn "$arn" | jq -r .Connection.ConnectionStatus)" AVAILABLE
deploy='{"name": "Deploy", "actions": [{"name": "Deploy", "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
  "configuration": {"BucketName": "target-bucket", "Extract": "true", "ObjectKey": "OBJECT"}, "inputArtifacts": [{"name": "code"}]}]}'
cat > "$work/web.json" <<JSON
{"name": "web", "pipelineType": "V2", "roleArn": "arn:aws:iam::000000000000:role/role",
 "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
 "triggers": [{"providerType": "CodeStarSourceConnection", "gitConfiguration": {"sourceActionName": "Source",
   "push": [{"branches": {"includes": ["main", "release/*"]}, "filePaths": {"excludes": ["docs/**"]}}]}}],
 "stages": [{"name": "Source", "actions": [{"name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS",
   "provider": "CodeStarSourceConnection", "version": "1"}, "configuration": {"ConnectionArn": "$arn",
   "FullRepositoryId": "acme/web", "BranchName": "main", "OutputArtifactFormat": "CODE_ZIP"},
   "outputArtifacts": [{"name": "code"}]}]}, ${deploy/OBJECT/web}]}
JSON
cli codepipeline create-pipeline --pipeline "file://$work/web.json" > /dev/null
check "first run" "$(executions web 1)" CreatePipeline
succeeded web
echo v2 > "$work/src/acme/web/index.html"
git -C "$work/src/acme/web" commit -q -am second
check "git commit starts the pipeline" "$(executions web 2)" WebhookV2
head=$(git -C "$work/src/acme/web" rev-parse HEAD)
for _ in $(seq 1 300); do
  state=$(cli codepipeline get-pipeline-state --name web | jq -r '.stageStates[0].actionStates[0].currentRevision.revisionId')
  [ "$state" = "$head" ] && break
  sleep 0.1
done
check "current revision" "$state" "$head"

# A pull request into main starts the pipeline whose trigger has a pull-request filter.
sed -e 's/"name": "web"/"name": "review"/' \
    -e 's/"push": \[{"branches": {"includes": \["main", "release\/\*"\]}, "filePaths": {"excludes": \["docs\/\*\*"\]}}\]/"pullRequest": [{"events": ["OPEN", "UPDATED"], "branches": {"includes": ["main"]}}]/' \
    "$work/web.json" > "$work/review.json"
grep -q pullRequest "$work/review.json"
cli codepipeline create-pipeline --pipeline "file://$work/review.json" > /dev/null
executions review 1 > /dev/null
succeeded review
git -C "$work/src/acme/web" checkout -q -b feature
echo feature > "$work/src/acme/web/index.html"
git -C "$work/src/acme/web" commit -q -am feature
opened=$("$bin" pull-request open acme/web --source feature --destination main --title Feature --endpoint "$endpoint")
check "pull request opened" "$(echo "$opened" | cut -d' ' -f1-6)" "acme/web #1 OPEN feature -> main"
check "a pull request starts the pipeline" "$(executions review 2)" WebhookV2
succeeded review
check "on the source branch's commit" \
  "$(cli codepipeline list-pipeline-executions --pipeline-name review | jq -r '.pipelineExecutionSummaries[0].sourceRevisions[0].revisionId')" \
  "$(git -C "$work/src/acme/web" rev-parse feature)"

url=$(cli codecommit create-repository --repository-name app | jq -r .repositoryMetadata.cloneUrlHttp)
git clone -q "$url" "$work/app" 2> /dev/null
git -C "$work/app" checkout -q -b main
echo app > "$work/app/README" && git -C "$work/app" add . && git -C "$work/app" commit -q -m app
git -C "$work/app" push -q origin main
check "get-branch after push" "$(cli codecommit get-branch --repository-name app --branch-name main | jq -r .branch.commitId)" \
  "$(git -C "$work/app" rev-parse HEAD)"
cat > "$work/app.json" <<JSON
{"name": "app", "pipelineType": "V2", "roleArn": "arn:aws:iam::000000000000:role/role",
 "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
 "stages": [{"name": "Source", "actions": [{"name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS",
   "provider": "CodeCommit", "version": "1"}, "configuration": {"RepositoryName": "app", "BranchName": "main"},
   "outputArtifacts": [{"name": "code"}]}]}, ${deploy/OBJECT/app}]}
JSON
cli codepipeline create-pipeline --pipeline "file://$work/app.json" > /dev/null
executions app 1 > /dev/null
succeeded app
echo more >> "$work/app/README" && git -C "$work/app" commit -q -am more && git -C "$work/app" push -q origin main
check "git push starts the pipeline" "$(executions app 2)" PollForSourceChanges

# The same repository, a pipeline that does not poll: the EventBridge rule AWS documents starts it.
sed -e 's/"name": "app"/"name": "app-events"/' -e 's/"BranchName": "main"}/"BranchName": "main", "PollForSourceChanges": "false"}/' \
    "$work/app.json" > "$work/app-events.json"
grep -q '"PollForSourceChanges": "false"' "$work/app-events.json"
cli codepipeline create-pipeline --pipeline "file://$work/app-events.json" > /dev/null
executions app-events 1 > /dev/null
succeeded app-events
rule=$(cli events put-rule --name app-main --event-pattern '{"source": ["aws.codecommit"],
  "detail-type": ["CodeCommit Repository State Change"], "resources": ["arn:aws:codecommit:eu-central-1:000000000000:app"],
  "detail": {"event": ["referenceCreated", "referenceUpdated"], "referenceType": ["branch"], "referenceName": ["main"]}}' | jq -r .RuleArn)
cli events put-targets --rule app-main \
  --targets Id=pipeline,Arn=arn:aws:codepipeline:eu-central-1:000000000000:app-events,RoleArn=arn:aws:iam::000000000000:role/events > /dev/null
echo rule >> "$work/app/README" && git -C "$work/app" commit -q -am rule && git -C "$work/app" push -q origin main
check "a push starts the polling pipeline" "$(executions app 3)" PollForSourceChanges
check "and the rule's pipeline" "$(executions app-events 2)" CloudWatchEvent
check "named by the rule" \
  "$(cli codepipeline list-pipeline-executions --pipeline-name app-events | jq -r '.pipelineExecutionSummaries[0].trigger.triggerDetail')" "$rule"

stop_hard
start
check "connection after kill -9" "$(cli codestar-connections list-connections | jq -r '.Connections | length')" 1
check "repository after kill -9" "$(cli codecommit get-repository --repository-name app | jq -r .repositoryMetadata.defaultBranch)" main
echo again >> "$work/app/README" && git -C "$work/app" commit -q -am again
url=$(cli codecommit get-repository --repository-name app | jq -r .repositoryMetadata.cloneUrlHttp)
git -C "$work/app" push -q "$url" main
check "rule after kill -9" "$(cli events list-targets-by-rule --rule app-main | jq -r '.Targets[0].Id')" pipeline
check "a push after kill -9 starts the pipeline" "$(executions app 4)" PollForSourceChanges
check "and the rule's pipeline after kill -9" "$(executions app-events 3)" CloudWatchEvent
echo "git CLI script: all checks passed"
