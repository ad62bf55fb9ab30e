# Shared by the CLI scripts: start the server on a free port with its own data dir, and checks.
# Expects $bin (the codepipeline-local binary) and $work (a scratch dir) to be set.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=eu-central-1 AWS_PAGER=""
pid=

start() {
  : > "$work/out.log"
  "$bin" serve --port 0 --data-dir "$work/data" > "$work/out.log" 2> "$work/err.log" &
  pid=$!
  for _ in $(seq 1 300); do
    endpoint=$(sed -n 's/^codepipeline-local listening on //p' "$work/out.log")
    [ -n "$endpoint" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/err.log"; echo "server exited"; exit 1; }
    sleep 0.1
  done
  echo "server did not start within 30 s"; exit 1
}

stop_hard() { kill -9 "$pid"; wait "$pid" 2>/dev/null || true; }
stop_soft() { kill -INT "$pid"; wait "$pid" 2>/dev/null || true; }

check() { # check DESCRIPTION ACTUAL EXPECTED
  if [ "$2" != "$3" ]; then echo "FAIL: $1: expected [$3], got [$2]"; exit 1; fi
  echo "ok: $1"
}
