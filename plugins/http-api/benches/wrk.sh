#!/usr/bin/env bash
# Benchmark of the http-api connector with wrk against a store of ROWS generated rows.
#
# Usage: plugins/http-api/benches/wrk.sh [ROWS]        (default 10000000)
#   env: DURATION (default 20s), CONNECTIONS (default 32), PORT (default 18080),
#        KEEP=1 keeps the database (logrelay_bench_http) and skips generation when it is full,
#        STORE_URL the store's connection URL (default postgres://postgres@127.0.0.1:5432/$DB;
#        for example add ?sslmode=disable, or use host=/var/run/postgresql for the Unix socket).
#
# Builds the release host and libraries, runs `logrelay run` with a plugins.toml of its own (a
# timescale store over the database logrelay_bench_http and the http-api on 127.0.0.1:$PORT; the
# API starts even when RabbitMQ is not reachable), fills the store's table with generate_series
# (its indexes dropped during the load and re-created after, from their own definitions), then
# measures `GET /logs?project=..&limit=100` and a one-hour `GET /log/by_dates`, with the CPU time
# the host and PostgreSQL spent per request (wrk shares the same cores: the figures depend on it).
set -euo pipefail

ROWS=${1:-10000000}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18080}
DB=logrelay_bench_http
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
. scripts/cpu.sh
STORE_URL=${STORE_URL:-postgres://postgres@127.0.0.1:5432/$DB}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p logrelay -p logrelay-timescale -p logrelay-http-api

if [[ "${KEEP:-0}" != 1 ]]; then
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
fi
"${PSQL[@]}" -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"

TMP=$(mktemp -d)
cat >"$TMP/plugins.toml" <<TOML
[plugins.store]
type = "timescale"
[plugins.store.config]
url = "$STORE_URL"
max_connections = 8
message_index = "off"

[plugins.api]
type = "http-api"
delivery = "best_effort"
[plugins.api.config]
store = "store"
listen = "127.0.0.1:$PORT"
TOML
cat >"$TMP/env" <<ENV
LOGRELAY_PLUGINS=$TMP/plugins.toml
LOGRELAY_PLUGIN_DIR=$ROOT/target/release
LOGRELAY_QUEUE=logrelay_bench_http
LOGRELAY_ADMIN_ADDR=127.0.0.1:0
LOGRELAY_LOG=warn
ENV
./target/release/logrelay --env-file "$TMP/env" run >"$TMP/host.log" 2>&1 &
HOST=$!
trap 'kill $HOST 2>/dev/null || true; wait $HOST 2>/dev/null || true; rm -rf "$TMP"' EXIT
UP=0
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/logs?limit=1" >/dev/null && { UP=1; break; }
    kill -0 $HOST 2>/dev/null || { cat "$TMP/host.log" >&2; exit 1; }
    sleep 0.2
done
[[ $UP == 1 ]] || { echo "the API did not come up on port $PORT" >&2; cat "$TMP/host.log" >&2; exit 1; }

HAVE=$("${PSQL[@]}" -d $DB -tAc "SELECT count(*) FROM logs")
if [[ "$HAVE" -lt "$ROWS" ]]; then
    echo "generating $ROWS rows..."
    time "${PSQL[@]}" -d $DB <<SQL
TRUNCATE logs;
CREATE TEMP TABLE saved AS
    SELECT indexname, indexdef FROM pg_indexes
    WHERE schemaname = 'public' AND tablename = 'logs' AND indexname NOT LIKE '%pkey';
DO \$\$ DECLARE r record; BEGIN
    FOR r IN SELECT indexname FROM saved LOOP EXECUTE format('DROP INDEX %I', r.indexname); END LOOP;
END \$\$;
ALTER TABLE logs DROP CONSTRAINT logs_pkey;
SET maintenance_work_mem = '512MB';
INSERT INTO logs (id, ts, level, project, module, message, attributes)
SELECT 'b' || i,
       timestamptz '2024-05-01 00:00:00+00' + i * interval '250 milliseconds',
       (i % 6)::smallint,
       'p' || (i % 20),
       'm' || (i % 50),
       'request ' || i || ' handled in ' || (i % 1000) || ' ms by worker ' || (i % 7),
       jsonb_build_object('seq', i, 'user', 'u' || (i % 1000))
FROM generate_series(1, $ROWS) AS i;
ALTER TABLE logs ADD PRIMARY KEY (id, ts);
DO \$\$ DECLARE r record; BEGIN
    FOR r IN SELECT indexdef FROM saved LOOP EXECUTE r.indexdef; END LOOP;
END \$\$;
ANALYZE logs;
SQL
fi
echo "rows: $("${PSQL[@]}" -d $DB -tAc "SELECT count(*) FROM logs")"

# One hour in the middle of the data (14,400 rows; the first page of 100 is answered).
FROM=2024-05-10T12:00:00Z
TO=2024-05-10T13:00:00Z
BASE="http://127.0.0.1:$PORT"
curl -sf "$BASE/logs?project=p7&limit=100" | head -c 300; echo
curl -sf "$BASE/log/by_dates?from=$FROM&to=$TO" | head -c 300; echo
for path in "/logs?project=p7&limit=100" "/log/by_dates?from=$FROM&to=$TO"; do
    echo "== GET $path (wrk -t2 -c$CONNECTIONS -d$DURATION)"
    host0=$(cpu_of_pid $HOST); pg0=$(cpu_of postgres)
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$BASE$path" >"$TMP/wrk.out"
    host1=$(cpu_of_pid $HOST); pg1=$(cpu_of postgres)
    grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors" "$TMP/wrk.out"
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    printf '    CPU per request: host %.3f ms, PostgreSQL %.3f ms (%s requests)\n' \
        "$(echo "($host1 - $host0) * 1000 / $n" | bc -l)" "$(echo "($pg1 - $pg0) * 1000 / $n" | bc -l)" "$n"
done
