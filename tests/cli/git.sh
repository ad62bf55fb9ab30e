#!/usr/bin/env bash
# Git sources with the real AWS CLI and git, as the README shows them: a connection and a V2
# pipeline whose trigger a `git commit` in a local repository fires; an embedded CodeCommit
# repository that `git push` over HTTP fills and whose push starts its pipeline; both kept across
# kill -9.
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
for _ in $(seq 1 300); do
  [ "$(cli codepipeline list-pipeline-executions --pipeline-name web | jq -r '.pipelineExecutionSummaries[0].status')" = Succeeded ] && break
  sleep 0.1
done
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
for _ in $(seq 1 300); do
  [ "$(cli codepipeline list-pipeline-executions --pipeline-name app | jq -r '.pipelineExecutionSummaries[0].status')" = Succeeded ] && break
  sleep 0.1
done
echo more >> "$work/app/README" && git -C "$work/app" commit -q -am more && git -C "$work/app" push -q origin main
check "git push starts the pipeline" "$(executions app 2)" PollForSourceChanges

stop_hard
start
check "connection after kill -9" "$(cli codestar-connections list-connections | jq -r '.Connections | length')" 1
check "repository after kill -9" "$(cli codecommit get-repository --repository-name app | jq -r .repositoryMetadata.defaultBranch)" main
echo again >> "$work/app/README" && git -C "$work/app" commit -q -am again
url=$(cli codecommit get-repository --repository-name app | jq -r .repositoryMetadata.cloneUrlHttp)
git -C "$work/app" push -q "$url" main
check "a push after kill -9 starts the pipeline" "$(executions app 3)" PollForSourceChanges
echo "git CLI script: all checks passed"
