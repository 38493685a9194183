#!/usr/bin/env bash
# Instructions per relayed request in a served gunicorn worker, everything included (the HTTP server, Django, the
# relay, the counters, the request-log writer), counted by callgrind: a figure a shared VM does not blur, for
# comparing two versions or two worker classes. With -y, the system calls per request instead (strace -c, the worker
# run natively), and the counter scripts run in Redis per request (EVALSHA in INFO commandstats). A tool, not a test.
#
#   bench/worker_instructions.sh [-k WORKER_CLASS] [-n REQUESTS] [-c CONCURRENCY] [-s] [-y] [-d DIR]
#
#   -k  gunicorn worker class (default gateway.worker.GeventWorker, what `modelgate serve` runs; e.g. gevent)
#   -n  requests counted (default 300), after 60 warm-up requests
#   -c  client connections sending them at once (default 1)
#   -s  streamed requests (default: plain)
#   -y  count system calls and Redis scripts, not instructions (needs strace; nothing else may use Redis meanwhile)
#   -d  checkout to measure (default: this one; it must have a .venv)
#
# gunicorn runs one worker under valgrind against the fake upstream on :8901 (started from ../shared/bench when not
# up), PostgreSQL (a fresh database) when one answers on 127.0.0.1, else SQLite, and Redis when it answers. A
# signal handler in the worker zeroes callgrind's counts after the warm-up and dumps them after the counted
# requests, through callgrind's client requests (a small C helper built here with gcc).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLASS=gateway.worker.GeventWorker N=300 C=1 MODE=plain DIR="$ROOT" COUNT=instructions
while getopts "k:n:c:syd:" opt; do
  case $opt in
    k) CLASS=$OPTARG ;; n) N=$OPTARG ;; c) C=$OPTARG ;; s) MODE=stream ;; d) DIR=$(cd "$OPTARG" && pwd) ;;
    y) COUNT=syscalls ;;
    *) sed -n 2,14p "$0"; exit 2 ;;
  esac
done
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
PY="$DIR/.venv/bin/python"
if [[ $COUNT == syscalls ]]; then
  command -v strace >/dev/null || { echo "worker_instructions: strace is missing (apt-get install -y strace)" >&2; exit 1; }
else
  command -v valgrind >/dev/null || { echo "worker_instructions: valgrind is missing" >&2; exit 1; }
fi
[[ -f /usr/include/valgrind/callgrind.h ]] || { echo "worker_instructions: valgrind's headers are missing" >&2; exit 1; }
WORK="$(mktemp -d /tmp/modelgate-instr.XXXXXX)"
PORT="${PORT:-$((20000 + RANDOM % 20000))}"

cleanup() {
  [[ -n "${GW_PID:-}" ]] && { kill "$GW_PID" 2>/dev/null; sleep 1; pkill -f "valgrind.*127.0.0.1:$PORT " 2>/dev/null; } || true
  [[ -n "${DB:-}" ]] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

curl -sf -o /dev/null http://127.0.0.1:8901/health || UPSTREAM_WORKERS=1 "$HARNESS/start_upstream.sh" start >/dev/null
curl -sf -o /dev/null -XPOST http://127.0.0.1:8901/__control -d '{"delay_ms": 0}'

cat >"$WORK/cgctl.c" <<'C'
#include <valgrind/callgrind.h>
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(void) { CALLGRIND_DUMP_STATS; }
C
gcc -shared -fPIC -O1 -o "$WORK/libcgctl.so" "$WORK/cgctl.c"
cat >"$WORK/gunicorn_conf.py" <<PYCONF
import ctypes
import signal

from gateway.gunicorn_conf import *  # noqa: F403

_cg = ctypes.CDLL("$WORK/libcgctl.so")


def post_fork(server, worker):
    # Real-time signals: gunicorn's worker resets the classic ones after this hook.
    signal.signal(signal.SIGRTMIN + 1, lambda *args: _cg.cg_zero())
    signal.signal(signal.SIGRTMIN + 2, lambda *args: _cg.cg_dump())
PYCONF
cat >"$WORK/config.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:8901/v1", api_key: sk-fake-upstream-key}
YAML

if pg_isready -q -h 127.0.0.1 2>/dev/null; then
  DB="modelgate_instr_$$"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
else
  export DATABASE_URL="sqlite:///$WORK/db.sqlite3"
fi
if redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then export REDIS_URL=redis://127.0.0.1:6379/0; fi
export MODELGATE_REDIS_PREFIX="instr-$$-$(date +%s):" MODELGATE_DATA_DIR="$WORK" MODELGATE_MASTER_KEY="sk-instr-$$"
export MODELGATE_CONFIG="$WORK/config.yaml" MODELGATE_UPSTREAM_POOL_SIZE=2000
cd "$DIR"
"$PY" -c "from gateway import cli; cli._prepare('$WORK/config.yaml')" >/dev/null
RUNNER=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" --dump-instr=no)
[[ $COUNT == syscalls ]] && RUNNER=()
"${RUNNER[@]}" "$PY" -m gunicorn gateway.wsgi:application --bind "127.0.0.1:$PORT" --workers 1 --worker-class "$CLASS" \
  --worker-connections 2000 --keep-alive 75 --timeout 600 --config "$WORK/gunicorn_conf.py" >"$WORK/log" 2>&1 &
GW_PID=$!
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health/readiness" && break; sleep 0.5; done
WORKER="$(pgrep -P "$GW_PID" | head -1)"
[[ -n "$WORKER" ]] || { cat "$WORK/log" >&2; exit 1; }
KEY="$(curl -sf "http://127.0.0.1:$PORT/key/generate" -H "Authorization: Bearer $MODELGATE_MASTER_KEY" \
  -d '{"models": ["gpt-4o-mini"], "max_budget": 1000000, "rpm_limit": 100000000}' | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

send() {  # send COUNT: COUNT requests over C keep-alive connections
  "$PY" - "$PORT" "$KEY" "$1" "$C" "$MODE" <<'PYCLIENT'
import http.client, json, sys, threading
port, key, count, conc, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                   "max_tokens": 32, "stream": mode == "stream"})
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
def run(n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
threads = [threading.Thread(target=run, args=(count // conc,)) for _ in range(conc)]
[t.start() for t in threads]
[t.join() for t in threads]
PYCLIENT
}

send 60
sleep 1
if [[ $COUNT == syscalls ]]; then
  commands() { redis-cli -h 127.0.0.1 info commandstats 2>/dev/null | awk -F'[:=,]' '/^cmdstat_evalsha:/ {n += $3} END {print n + 0}'; }
  before="$(commands)"
  strace -c -f -p "$WORKER" -o "$WORK/strace.txt" 2>/dev/null &
  STRACE=$!
  sleep 1
  send "$N"
  kill -INT "$STRACE"; wait "$STRACE" 2>/dev/null || true
  count=$(( N / C * C ))
  redis=$(( $(commands) - before ))
  echo "$(basename "$DIR") ($(git -C "$DIR" rev-parse --short HEAD 2>/dev/null || echo '?')), $CLASS, $MODE, c=$C," \
    "per request: $(awk -v n="$count" '$1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.01 {printf "%s %.2f, ", $NF, $4 / n}' "$WORK/strace.txt")" \
    "Redis scripts $(awk -v r="$redis" -v n="$count" 'BEGIN {printf "%.2f", r/n}')"
  exit 0
fi
kill -s "$(( $(kill -l SIGRTMIN) + 1 ))" "$WORKER"
sleep 1
send "$N"
kill -s "$(( $(kill -l SIGRTMIN) + 2 ))" "$WORKER"
for _ in $(seq 60); do ls "$WORK"/cg."$WORKER".* >/dev/null 2>&1 && break; sleep 0.5; done
sleep 1
total="$(grep -hE '^(summary|totals):' "$WORK"/cg."$WORKER".* | head -1 | awk '{print $2}')"
count=$(( N / C * C ))
echo "$(basename "$DIR") ($(git -C "$DIR" rev-parse --short HEAD 2>/dev/null || echo '?')), $CLASS, $MODE, c=$C:" \
  "$(( total / count )) instructions per request ($total over $count requests)"
