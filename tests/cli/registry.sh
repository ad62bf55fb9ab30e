#!/usr/bin/env bash
# The ECR registry with a real OCI client (skopeo): an image in an OCI layout is pushed to the
# endpoint's /v2/ API, shows in the AWS CLI's describe-images with the manifest's digest, and
# is pulled back whole.
# Usage: tests/cli/registry.sh BINARY
set -euo pipefail
bin=${1:?usage: registry.sh PATH-TO-codepipeline-local}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '{ [ -n "$pid" ] && kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
. "$here/common.sh"
cli() { aws --endpoint-url "$endpoint" "$@"; }
start
registry=${endpoint#http://}

# An image in an OCI layout: one layer (a tar of one file), its config, its manifest.
digest=$(python3 - "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
os.makedirs(f"{root}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{root}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": f"sha256:{d}", "size": len(data)}
tar = io.BytesIO()
with tarfile.open(fileobj=tar, mode="w") as t:
    data = b"hello from the registry\n"
    info = tarfile.TarInfo("hello.txt"); info.size = len(data); t.addfile(info, io.BytesIO(data))
layer = dict(blob(gzip.compress(tar.getvalue())), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
config = dict(blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()]}}).encode()),
    mediaType="application/vnd.oci.image.config.v1+json")
manifest = dict(blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": config, "layers": [layer]}).encode()), mediaType="application/vnd.oci.image.manifest.v1+json",
    annotations={"org.opencontainers.image.ref.name": "v1"})
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{root}/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [manifest]}, open(f"{root}/index.json", "w"))
print(manifest["digest"])
PY
)

cli ecr create-repository --repository-name team/web > /dev/null
timeout 120 skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://$registry/team/web:v1"
check "the pushed image is an ECR image" \
  "$(cli ecr describe-images --repository-name team/web --query 'imageDetails[0].[imageDigest,imageTags[0]]' --output text)" \
  "$digest	v1"
check "the registry names its digest" \
  "$(timeout 60 skopeo inspect --tls-verify=false "docker://$registry/team/web:v1" | jq -r .Digest)" "$digest"
timeout 120 skopeo copy --quiet --src-tls-verify=false "docker://$registry/team/web:v1" "oci:$work/pulled:v1"
check "the pull gives the same layer back" \
  "$(cd "$work" && diff -r layout/blobs pulled/blobs > /dev/null && echo same)" same
check "a repository that is not there is refused" \
  "$(timeout 60 skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://$registry/absent:v1" 2>&1 | grep -c 'NAME_UNKNOWN\|name unknown')" 1
