#!/usr/bin/env bash
# Fuzz the HTTP API from its OpenAPI schema: fail on any 5xx, on a status code or content
# type the schema does not document, or on a documented header missing.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 30 per operation; 200 gives ~10,000+ cases)
#
# CHECKS overrides the list of checks; the JSON report (cases and failures by check) is
# written to $REPORT (default schemathesis-report.json in the checkout).
#
# Runs on a throwaway embedded server (its own LEARNLOOP_HOME), with an admin key made
# for the run, so it never touches your data. Needs the dev extra (schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
N=${1:-30}
PORT=${PORT:-8765}
CHECKS=${CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance}
REPORT=${REPORT:-$PWD/schemathesis-report.json}
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
# The server answers once its startup (the embedding model load included) is done.
for _ in $(seq 1 360); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done

status=0
"$BIN/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
  --header "Authorization: Bearer $KEY" \
  --checks "$CHECKS" \
  --max-examples "$N" \
  --report json --report-json-path "$REPORT" \
  --request-timeout 30 \
  --wait-for-schema 60 \
  --suppress-health-check all || status=$?
if grep -q " 500 " "$LEARNLOOP_HOME/server.log"; then
  echo "server logged a 500:"; grep -n " 500 " "$LEARNLOOP_HOME/server.log" | head
  exit 1
fi
exit $status
