#!/usr/bin/env bash
# Start LocalStack in host mode (no Docker) on 127.0.0.1:${PORT:-4566}, in the background.
#
#   bash localstack/start-host.sh            # S3 only
#   SERVICES=s3,lambda PORT=4570 bash localstack/start-host.sh
#
# Needs `bash localstack/install.sh` first. Waits until /_localstack/health answers, then prints
# the endpoint and how to stop it. State (data, log, pid) lives in
# ${SHOAL_CACHE:-$HOME/.cache/shoal}/localstack-run/$PORT unless LOCALSTACK_STATE_DIR is set.
set -euo pipefail

SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
VENV="${SHOAL_LOCALSTACK_VENV:-$SHOAL_CACHE/localstack-venv}"
PORT="${PORT:-4566}"
SERVICES="${SERVICES:-s3}"
STATE="${LOCALSTACK_STATE_DIR:-$SHOAL_CACHE/localstack-run/$PORT}"
TIMEOUT="${LOCALSTACK_START_TIMEOUT:-60}"
ENDPOINT="http://127.0.0.1:$PORT"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import localstack.runtime.main' 2>/dev/null; then
  echo "localstack/start-host.sh: error: LocalStack is not installed in $VENV; run: bash localstack/install.sh" >&2
  exit 1
fi

health() {
  "$VENV/bin/python" - "$ENDPOINT/_localstack/health" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

if [[ -f "$STATE/pid" ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
  echo "localstack/start-host.sh: error: LocalStack already running on port $PORT (pid $(cat "$STATE/pid"))" >&2
  echo "  stop it with: kill -- -\$(cat $STATE/pid)" >&2
  exit 1
fi
if health; then
  echo "localstack/start-host.sh: error: something already answers on $ENDPOINT" >&2
  exit 1
fi

mkdir -p "$STATE/data"
echo "localstack/start-host.sh: starting LocalStack (SERVICES=$SERVICES) on $ENDPOINT, log $STATE/localstack.log"
# setsid: its own process group, so `kill -- -PID` stops LocalStack and all its children.
GATEWAY_LISTEN="127.0.0.1:$PORT" \
SERVICES="$SERVICES" \
DISABLE_EVENTS=1 \
SKIP_SSL_CERT_DOWNLOAD=1 \
DNS_ADDRESS=0 \
OVERRIDE_IN_DOCKER=0 \
FILESYSTEM_ROOT="$STATE/data" \
  setsid "$VENV/bin/python" -m localstack.runtime.main >"$STATE/localstack.log" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$STATE/pid"

deadline=$((SECONDS + TIMEOUT))
until health; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "localstack/start-host.sh: error: LocalStack exited during start; log tail:" >&2
    tail -n 30 "$STATE/localstack.log" >&2
    rm -f "$STATE/pid"
    exit 1
  fi
  if (( SECONDS >= deadline )); then
    echo "localstack/start-host.sh: error: LocalStack not healthy after ${TIMEOUT}s; log tail:" >&2
    tail -n 30 "$STATE/localstack.log" >&2
    kill -- "-$PID" 2>/dev/null || true
    rm -f "$STATE/pid"
    exit 1
  fi
  sleep 0.3
done

echo "localstack/start-host.sh: LocalStack ready (pid $PID)"
echo "endpoint: $ENDPOINT"
echo "stop with: kill -- -\$(cat $STATE/pid)"
