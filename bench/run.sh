#!/usr/bin/env bash
# make bench: modelgate as `modelgate serve` runs it in production and LiteLLM's proxy, side by side, in one run,
# against the same fake upstream (../shared/bench). Writes docs/performance.md.
#
#   bench/run.sh [SCENARIO ...]     default: a b c d e f g   (g = 1,000 concurrent streams, 2 s upstream)
#
# Env: WORKERS (2: gunicorn workers for modelgate and uvicorn workers for LiteLLM), WORKER_CLASS (modelgate's
#   default unless set: gthread|gevent), THREADS, BENCH_HARNESS (../shared/bench), SKIP_PEER=1 (modelgate only),
#   DURATION / WARMUP (the harness's), DATABASE_URL / REDIS_URL (default: a temporary SQLite file; Redis at
#   127.0.0.1:6379 when it answers), OUT (docs/performance.md), LABEL (a name for this run's results).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
WORKERS="${WORKERS:-2}"
PORT="${MODELGATE_BENCH_PORT:-4100}"
MASTER="sk-bench-master-$(date +%s)"
SCEN=("${@:-a b c d e f g}")
read -r -a SCEN <<<"${SCEN[*]}"
SCEN=("${SCEN[@]/#g/g:2000:1000:1}")
WORK="$(mktemp -d /tmp/modelgate-bench.XXXXXX)"
export OUT_DIR="$WORK/results"
PY="$ROOT/.venv/bin/python"

command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install -y wrk" >&2; exit 1; }
[[ -x "$PY" ]] || { echo "bench: run 'make install' first" >&2; exit 1; }
[[ -d "$HARNESS" ]] || { echo "bench: no harness at $HARNESS (set BENCH_HARNESS)" >&2; exit 1; }

cleanup() {
  [[ -n "${GW_PID:-}" ]] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [[ -n "${BENCH_DB:-}" ]] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
  [[ "${SKIP_PEER:-0}" == 1 ]] || "$HARNESS/peer_litellm.sh" stop >/dev/null 2>&1 || true
  [[ "${STARTED_UPSTREAM:-0}" == 1 ]] && "$HARNESS/start_upstream.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
if ! curl -sf -o /dev/null http://127.0.0.1:8901/health; then
  UPSTREAM_WORKERS="${UPSTREAM_WORKERS:-1}" "$HARNESS/start_upstream.sh" start; STARTED_UPSTREAM=1
fi

# --- modelgate ----------------------------------------------------------------------------------------------------
cat >"$WORK/config.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:8901/v1
      api_key: sk-fake-upstream-key
YAML
export MODELGATE_DATA_DIR="$WORK" MODELGATE_MASTER_KEY="$MASTER"
# Production's database: a fresh PostgreSQL database when a server answers on 127.0.0.1, else a SQLite file.
if [[ -z "${DATABASE_URL:-}" ]] && pg_isready -q -h 127.0.0.1 2>/dev/null; then
  BENCH_DB="modelgate_bench_$(date +%s)"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
fi
export DATABASE_URL="${DATABASE_URL:-sqlite:///$WORK/bench.sqlite3}"
if [[ -z "${REDIS_URL:-}" ]] && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then export REDIS_URL=redis://127.0.0.1:6379/0; fi
export MODELGATE_REDIS_PREFIX="bench-$(date +%s):"
serve_args=(serve --config "$WORK/config.yaml" --port "$PORT" --workers "$WORKERS")
[[ -n "${WORKER_CLASS:-}" ]] && serve_args+=(--worker-class "$WORKER_CLASS")
[[ -n "${THREADS:-}" ]] && serve_args+=(--threads "$THREADS")
"$PY" -m gateway.cli "${serve_args[@]}" >"$WORK/modelgate.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health/readiness" && break; sleep 0.2; done
# A virtual key with a budget and an rpm limit far above what the run reaches: auth, access, the budget and
# rate-limit admission and spend accounting all run as shipped; the request log is on.
KEY="$(curl -sf "http://127.0.0.1:$PORT/key/generate" -H "Authorization: Bearer $MASTER" \
  -d '{"models": ["gpt-4o-mini"], "max_budget": 1000000, "rpm_limit": 100000000, "key_alias": "bench"}' \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
class="$(grep -o 'workers x [0-9]* threads\|worker class [a-z]*' "$WORK/modelgate.log" | head -1 || true)"
GATEWAY_PID="$GW_PID" LABEL="${LABEL:-modelgate}-w$WORKERS" \
  GATEWAY_NOTE="modelgate serve, $WORKERS workers ($(head -c 300 "$WORK/modelgate.log" | grep -o 'serving on.*' | head -1)), $( [[ -n "${REDIS_URL:-}" ]] && echo Redis counters || echo database counters), request log on, ${DATABASE_URL%%:*}" \
  "$HARNESS/run.sh" "http://127.0.0.1:$PORT/v1" "$KEY" gpt-4o-mini "${SCEN[@]}"
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=""
rows="$("$PY" - "$DATABASE_URL" <<'PYEOF'
import sys, sqlite3
url = sys.argv[1]
if url.startswith("sqlite:///"):
    print(sqlite3.connect(url[len("sqlite:///"):]).execute("select count(*) from gateway_requestlog").fetchone()[0])
else:
    import psycopg
    with psycopg.connect(url) as c:
        print(c.execute("select count(*) from gateway_requestlog").fetchone()[0])
PYEOF
)"
echo "bench: modelgate wrote $rows request-log rows" | tee "$WORK/results/request-log-rows.txt"

# --- LiteLLM ------------------------------------------------------------------------------------------------------
if [[ "${SKIP_PEER:-0}" != 1 ]]; then
  "$HARNESS/peer_litellm.sh" install >/dev/null
  # LiteLLM reads DATABASE_URL and REDIS_URL too: run it as its own benchmark does, without them.
  env -u DATABASE_URL -u REDIS_URL LITELLM_WORKERS="$WORKERS" "$HARNESS/peer_litellm.sh" start
  ver="$("${LITELLM_VENV:-/tmp/peer-venv}/bin/pip" show litellm 2>/dev/null | awk '/^Version/{print $2}')"
  GATEWAY_PID="$(cat /tmp/litellm-4001.pid)" LABEL="litellm-$ver-w$WORKERS" \
    GATEWAY_NOTE="LiteLLM $ver, uvicorn, --num_workers $WORKERS, no DB, master key" \
    "$HARNESS/run.sh" "http://127.0.0.1:4001/v1" "${LITELLM_MASTER_KEY:-sk-bench-7f3c9a1e5d2b4860}" gpt-4o-mini "${SCEN[@]}"
  "$HARNESS/peer_litellm.sh" stop
fi

"$PY" "$ROOT/bench/report.py" "$OUT_DIR" --out "${OUT:-$ROOT/docs/performance.md}"
mkdir -p "$ROOT/bench/results" && cp -r "$OUT_DIR"/. "$ROOT/bench/results/"
echo "bench: wrote ${OUT:-$ROOT/docs/performance.md}"
