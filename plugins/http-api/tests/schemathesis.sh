#!/usr/bin/env bash
# Property-based run of schemathesis (pip install schemathesis) against /openapi.json: every
# operation with generated (valid and invalid) input; the check is that nothing answers 5xx
# (`not_a_server_error`), and with FULL=1 every schemathesis check.
#
# Usage: plugins/http-api/tests/schemathesis.sh          env: PORT (default 18090), MAX_EXAMPLES (100)
#
# Runs `logrelay run` (release build) with a timescale store over a fresh database
# logrelay_schemathesis (dropped at the end) and the http-api with a token, so POST and DELETE
# are exercised too; 500 rows are added first. The live tail is left out (it never ends).
set -euo pipefail

PORT=${PORT:-18090}
MAX_EXAMPLES=${MAX_EXAMPLES:-100}
DB=logrelay_schemathesis
TOKEN=schemathesis-token-0123456789
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"

command -v schemathesis >/dev/null || { echo "schemathesis is missing: pip install schemathesis" >&2; exit 1; }
cargo build --release -q -p logrelay -p logrelay-timescale -p logrelay-http-api
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

TMP=$(mktemp -d)
cat >"$TMP/plugins.toml" <<TOML
[plugins.store]
type = "timescale"
[plugins.store.config]
url = "postgres://postgres@127.0.0.1:5432/$DB"

[plugins.api]
type = "http-api"
delivery = "best_effort"
[plugins.api.config]
store = "store"
listen = "127.0.0.1:$PORT"
token = "$TOKEN"
TOML
cat >"$TMP/env" <<ENV
LOGRELAY_PLUGINS=$TMP/plugins.toml
LOGRELAY_PLUGIN_DIR=$ROOT/target/release
LOGRELAY_QUEUE=logrelay_schemathesis
LOGRELAY_ADMIN_ADDR=127.0.0.1:0
LOGRELAY_LOG=warn
ENV
./target/release/logrelay --env-file "$TMP/env" run >"$TMP/host.log" 2>&1 &
HOST=$!
cleanup() {
    kill $HOST 2>/dev/null || true
    wait $HOST 2>/dev/null || true
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    rm -rf "$TMP"
}
trap cleanup EXIT
UP=0
for _ in $(seq 1 300); do
    curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/logs?limit=1" >/dev/null && { UP=1; break; }
    kill -0 $HOST 2>/dev/null || { cat "$TMP/host.log" >&2; exit 1; }
    sleep 0.2
done
[[ $UP == 1 ]] || { echo "the API did not come up on port $PORT" >&2; cat "$TMP/host.log" >&2; exit 1; }
"${PSQL[@]}" -d $DB -c "INSERT INTO logs (id, ts, level, project, module, message, attributes)
    SELECT 's' || i, now() - i * interval '1 second', (i % 6)::smallint, 'p' || (i % 3),
           'm' || (i % 5), 'message ' || i, jsonb_build_object('seq', i)
    FROM generate_series(1, 500) AS i"

CHECKS=not_a_server_error
[[ "${FULL:-0}" == 1 ]] && CHECKS=all
schemathesis run "http://127.0.0.1:$PORT/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --exclude-path /logs/stream \
    --request-timeout 20
