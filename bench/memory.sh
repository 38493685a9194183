#!/usr/bin/env bash
# Memory over a long run of scenario c (200 connections, 500 ms upstream): RSS of each modelgate worker sampled
# every 10 s, as `modelgate serve` runs by default. Appends the result to docs/performance.md.
#
#   bench/memory.sh [SECONDS]        default 600 (the issue's 10 minutes)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
SECONDS_TOTAL="${1:-600}"
PORT=4101
WORK="$(mktemp -d /tmp/modelgate-memory.XXXXXX)"
PY="$ROOT/.venv/bin/python"
MASTER="sk-bench-master-$(date +%s)"
cleanup() {
  [[ -n "${GW_PID:-}" ]] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [[ -n "${BENCH_DB:-}" ]] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
  curl -sf -X POST http://127.0.0.1:8901/__control -d '{"delay_ms": 0}' >/dev/null 2>&1 || true
  [[ "${STARTED_UPSTREAM:-0}" == 1 ]] && "$HARNESS/start_upstream.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
curl -sf -o /dev/null http://127.0.0.1:8901/health || { "$HARNESS/start_upstream.sh" start; STARTED_UPSTREAM=1; }
cat >"$WORK/config.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:8901/v1", api_key: sk-fake-upstream-key}
YAML
if [[ -z "${DATABASE_URL:-}" ]] && pg_isready -q -h 127.0.0.1 2>/dev/null; then
  BENCH_DB="modelgate_memory_$(date +%s)"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
fi
export MODELGATE_DATA_DIR="$WORK" MODELGATE_MASTER_KEY="$MASTER" DATABASE_URL="${DATABASE_URL:-sqlite:///$WORK/bench.sqlite3}"
if [[ -z "${REDIS_URL:-}" ]] && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then export REDIS_URL=redis://127.0.0.1:6379/0; fi
export MODELGATE_REDIS_PREFIX="memory-$(date +%s):"
"$PY" -m gateway.cli serve --config "$WORK/config.yaml" --port "$PORT" --workers "${WORKERS:-2}" >"$WORK/modelgate.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health/readiness" && break; sleep 0.2; done
KEY="$(curl -sf "http://127.0.0.1:$PORT/key/generate" -H "Authorization: Bearer $MASTER" \
  -d '{"max_budget": 1000000, "rpm_limit": 100000000}' | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
curl -sf -X POST http://127.0.0.1:8901/__control -d '{"delay_ms": 500}' >/dev/null
echo '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi"}],"max_tokens":32}' >"$WORK/body.json"
BENCH_BODY_FILE="$WORK/body.json" BENCH_OUT="$WORK/wrk.json" BENCH_API_KEY="$KEY" \
  wrk -t1 -c200 -d"${SECONDS_TOTAL}s" --timeout 30s -s "$HARNESS/chat.lua" "http://127.0.0.1:$PORT/v1/chat/completions" \
  >"$WORK/wrk.txt" 2>&1 &
WRK=$!
echo "t_s,worker_pid,rss_mb" >"$WORK/rss.csv"
start=$(date +%s)
while kill -0 "$WRK" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  for pid in $(pgrep -P "$GW_PID"); do
    echo "$now,$pid,$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")" >>"$WORK/rss.csv"
  done
  sleep 10
done
"$PY" - "$WORK" "$ROOT/docs/performance.md" <<'PYEOF'
import csv, json, sys
from pathlib import Path
work, doc = Path(sys.argv[1]), Path(sys.argv[2])
rows = list(csv.DictReader(open(work / "rss.csv")))
wrk = json.loads((work / "wrk.json").read_text()) if (work / "wrk.json").exists() else {}
by_pid = {}
for r in rows:
    by_pid.setdefault(r["worker_pid"], []).append((int(r["t_s"]), float(r["rss_mb"])))
lines = ["<!-- memory:begin -->", f"Scenario c for {max(int(r['t_s']) for r in rows) + 10} s: "
         f"{wrk.get('ok_rps', 0):.0f} ok rps, {sum(wrk.get('errors', {}).values())} errors. RSS per worker (MB), "
         "sampled every 10 s; 'settled' is the first sample after the first minute.", "",
         "| worker | first sample | settled (60 s) | last | max | last vs settled |", "|---|---:|---:|---:|---:|---:|"]
for pid, series in by_pid.items():
    settled = next((v for t, v in series if t >= 60), series[0][1])
    last, peak = series[-1][1], max(v for _, v in series)
    lines.append(f"| {pid} | {series[0][1]:.1f} | {settled:.1f} | {last:.1f} | {peak:.1f} | {(last / settled - 1) * 100:+.1f} % |")
lines.append("<!-- memory:end -->")
block = "\n".join(lines)
text = doc.read_text()
if "<!-- memory:begin -->" in text:
    head, rest = text.split("<!-- memory:begin -->", 1)
    text = head + block + rest.split("<!-- memory:end -->", 1)[1]
else:
    text += "\n" + block + "\n"
doc.write_text(text)
print(block)
PYEOF
cp "$WORK/rss.csv" "$ROOT/bench/results/memory-rss.csv" 2>/dev/null || true
