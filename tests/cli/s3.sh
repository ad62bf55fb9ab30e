#!/usr/bin/env bash
# Drives the embedded S3 with the real AWS CLI and boto3, including a 100 MB multipart upload,
# sync, aws-chunked uploads and a kill -9 restart. Usage: tests/cli/s3.sh BINARY
set -euo pipefail
bin=${1:?usage: s3.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
s3() { aws --endpoint-url "$endpoint" "$@"; }
# High-level transfer commands, without their progress output.
s3q() { aws --endpoint-url "$endpoint" s3 "$@" --only-show-errors; }

start
s3 s3 mb s3://source-bucket > /dev/null
s3 s3api put-bucket-versioning --bucket source-bucket --versioning-configuration Status=Enabled
check "versioning enabled" "$(s3 s3api get-bucket-versioning --bucket source-bucket --query Status --output text)" Enabled
echo "Hello LocalStack!" > "$work/file"
s3q cp "$work/file" s3://source-bucket
head -c 104857600 /dev/urandom > "$work/big.bin"
s3q cp "$work/big.bin" s3://source-bucket
check "ls" "$(s3 s3 ls s3://source-bucket | awk '{print $3, $4}' | sort | tr '\n' ' ')" "104857600 big.bin 18 file "
check "multipart ETag" "$(s3 s3api head-object --bucket source-bucket --key big.bin --query ETag --output text | grep -c -- '-[0-9]*"$')" 1
check "cp to stdout" "$(s3 s3 cp s3://source-bucket/file -)" "Hello LocalStack!"
s3q cp s3://source-bucket/big.bin "$work/big-back.bin"
check "100 MB round trip" "$(cmp -s "$work/big.bin" "$work/big-back.bin" && echo same)" same
s3q cp "$work/file" s3://source-bucket/file
check "two versions of file" "$(s3 s3api list-object-versions --bucket source-bucket --prefix file --query 'length(Versions)')" 2

mkdir -p "$work/dir/sub"; echo a > "$work/dir/a.txt"; echo b > "$work/dir/sub/b.txt"
s3 s3 mb s3://target-bucket > /dev/null
s3q sync "$work/dir" s3://target-bucket/prefix
check "sync" "$(s3 s3 ls --recursive s3://target-bucket | awk '{print $4}' | tr '\n' ' ')" "prefix/a.txt prefix/sub/b.txt "

# boto3 sends aws-chunked bodies with trailing checksums.
python3 - "$endpoint" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="eu-central-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
body = b"chunked " * 100000
s3.put_object(Bucket="target-bucket", Key="boto3.bin", Body=body, ChecksumAlgorithm="CRC32")
got = s3.get_object(Bucket="target-bucket", Key="boto3.bin")["Body"].read()
assert got == body, "boto3 round trip differs"
s3.upload_fileobj(__import__("io").BytesIO(b"x" * (9 * 1024 * 1024)), "target-bucket", "boto3-multipart.bin")
assert s3.head_object(Bucket="target-bucket", Key="boto3-multipart.bin")["ContentLength"] == 9 * 1024 * 1024
print("ok: boto3 aws-chunked and multipart uploads")
PY

# Tags, copies between buckets over the multipart threshold (UploadPartCopy), uploads in progress.
s3 s3api put-object-tagging --bucket source-bucket --key file --tagging 'TagSet=[{Key=team,Value=blue}]' > /dev/null
check "tags" "$(s3 s3api get-object-tagging --bucket source-bucket --key file --query 'TagSet[0].Value' --output text)" blue
s3q cp s3://source-bucket/file s3://target-bucket/tagged
check "a copy keeps its tags" "$(s3 s3api get-object-tagging --bucket target-bucket --key tagged --query 'TagSet[0].Value' --output text)" blue
s3q cp s3://source-bucket/big.bin s3://target-bucket/big-copy.bin
check "multipart copy ETag" "$(s3 s3api head-object --bucket target-bucket --key big-copy.bin --query ETag --output text | grep -c -- '-[0-9]*"$')" 1
s3q cp s3://target-bucket/big-copy.bin "$work/big-copy.bin"
check "100 MB copied between buckets" "$(cmp -s "$work/big.bin" "$work/big-copy.bin" && echo same)" same
upload=$(s3 s3api create-multipart-upload --bucket target-bucket --key pending --query UploadId --output text)
check "uploads in progress" "$(s3 s3api list-multipart-uploads --bucket target-bucket --query 'Uploads[].Key' --output text)" pending
s3 s3api abort-multipart-upload --bucket target-bucket --key pending --upload-id "$upload"
check "no uploads in progress" "$(s3 s3api list-multipart-uploads --bucket target-bucket --query 'length(Uploads || `[]`)')" 0

stop_hard
start
check "tags after kill -9" "$(s3 s3api get-object-tagging --bucket source-bucket --key file --query 'TagSet[0].Key' --output text)" team
check "objects after kill -9" "$(s3 s3 cp s3://source-bucket/file -)" "Hello LocalStack!"
check "versions after kill -9" "$(s3 s3api list-object-versions --bucket source-bucket --prefix file --query 'length(Versions)')" 2
s3q rm s3://target-bucket --recursive
s3 s3 rb s3://target-bucket > /dev/null
check "buckets" "$(s3 s3 ls | awk '{print $3}')" "source-bucket"
echo "s3 CLI script: all checks passed"
