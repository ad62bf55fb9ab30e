#!/usr/bin/env bash
# The tutorial's IAM steps and STS with the real AWS CLI, and a kill -9 restart.
# Usage: tests/cli/iam.sh BINARY
set -euo pipefail
bin=${1:?usage: iam.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
cli() { aws --endpoint-url "$endpoint" "$@"; }

cat > "$work/role.json" <<'JSON'
{ "Version": "2012-10-17", "Statement": [ { "Effect": "Allow", "Principal": { "Service": "codepipeline.amazonaws.com" }, "Action": "sts:AssumeRole" } ]}
JSON
cat > "$work/policy.json" <<'JSON'
{ "Version": "2012-10-17", "Statement": [ { "Effect": "Allow", "Action": [ "s3:*" ], "Resource": "*" } ]}
JSON

start
check "create-role" "$(cli iam create-role --role-name role --assume-role-policy-document "file://$work/role.json" | jq -r .Role.Arn)" "arn:aws:iam::000000000000:role/role"
cli iam put-role-policy --role-name role --policy-name policy --policy-document "file://$work/policy.json"
check "get-role-policy" "$(cli iam get-role-policy --role-name role --policy-name policy | jq -c .PolicyDocument.Statement[0].Action)" '["s3:*"]'
cli iam attach-role-policy --role-name role --policy-arn arn:aws:iam::aws:policy/AWSCodePipeline_FullAccess
check "list-attached-role-policies" "$(cli iam list-attached-role-policies --role-name role | jq -r '.AttachedPolicies[0].PolicyName')" AWSCodePipeline_FullAccess
check "get-caller-identity" "$(cli sts get-caller-identity | jq -r .Account)" 000000000000
if cli iam get-role --role-name missing 2> "$work/err"; then echo "FAIL: a missing role was found"; exit 1; fi
check "missing role" "$(grep -o NoSuchEntity "$work/err")" NoSuchEntity

stop_hard
start
check "trust policy after kill -9" "$(cli iam get-role --role-name role | jq -r '.Role.AssumeRolePolicyDocument.Statement[0].Principal.Service')" codepipeline.amazonaws.com
check "inline policies after kill -9" "$(cli iam list-role-policies --role-name role | jq -c .PolicyNames)" '["policy"]'
cli iam detach-role-policy --role-name role --policy-arn arn:aws:iam::aws:policy/AWSCodePipeline_FullAccess
cli iam delete-role-policy --role-name role --policy-name policy
cli iam delete-role --role-name role
check "roles after delete" "$(cli iam list-roles | jq -c '[.Roles[].RoleName]')" "[]"
echo "iam CLI script: all checks passed"
