#!/usr/bin/env bash
# One command: start `learnloop serve` on the demo's home, make an installation key (CLI),
# run the phone agent against it, stop the server. Run `make install` (or `make demo`) first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/.venv/bin"
export LEARNLOOP_HOME="${LEARNLOOP_HOME:-$root/.learnloop}"
export LEARNLOOP_ARCHIVE_INTERVAL=0
port="${PORT:-8765}"

for d in "$root/clients/typescript" "$here"; do
  (cd "$d" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build --silent)
done

LEARNLOOP_INSTALLATION_KEY="$("$bin/learnloop" keys create --installation --name "phone-agent-example")"
export LEARNLOOP_INSTALLATION_KEY LEARNLOOP_URL="http://127.0.0.1:$port"
"$bin/learnloop" serve --port "$port" > "$LEARNLOOP_HOME/phone_agent_server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs "$LEARNLOOP_URL/readyz" > /dev/null && break
  sleep 0.5
done
cd "$here" && node dist/src/main.js
