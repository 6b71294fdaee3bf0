#!/usr/bin/env bash
# Fuzz the HTTP API from its OpenAPI schema and fail on any 5xx.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 30 per operation)
#
# Runs on a throwaway embedded server (its own LEARNLOOP_HOME), with an admin key made
# for the run, so it never touches your data. Needs the dev extra (schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
N=${1:-30}
PORT=${PORT:-8765}
export LEARNLOOP_HOME=$(mktemp -d -t learnloop-fuzz-XXXXXX)
export LEARNLOOP_ARCHIVE_INTERVAL=0
unset LEARNLOOP_DATABASE_URL
cleanup() {
  [[ -n "${SERVER:-}" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  "$BIN/learnloop" db stop >/dev/null 2>&1 || true
  rm -rf "$LEARNLOOP_HOME"
}
trap cleanup EXIT

KEY=$("$BIN/learnloop" keys create --name fuzz --scope admin 2>/dev/null)
"$BIN/learnloop" log --kind chat --prompt "seed for the fuzzer" >/dev/null
"$BIN/learnloop" serve --port "$PORT" --archive-every 0 >"$LEARNLOOP_HOME/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done

"$BIN/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
  --header "Authorization: Bearer $KEY" \
  --checks not_a_server_error \
  --max-examples "$N" \
  --request-timeout 30 \
  --suppress-health-check all
status=$?
if grep -q " 500 " "$LEARNLOOP_HOME/server.log"; then
  echo "server logged a 500:"; grep -n " 500 " "$LEARNLOOP_HOME/server.log" | head
  exit 1
fi
exit $status
