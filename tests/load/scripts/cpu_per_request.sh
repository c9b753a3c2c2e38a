#!/usr/bin/env bash
# CPU time and context switches per request of one gateway binary, for
# comparing two builds run one after the other on the same machine.
#
#   tests/load/scripts/cpu_per_request.sh all   BIN [RATE CONNECTIONS]
#   tests/load/scripts/cpu_per_request.sh split BIN [RATE CONNECTIONS]
#
# Starts the mock upstream and the gateway from BIN (`tollgate all`, or
# the five processes of scripts/split), creates an account on the mock
# and a key through the admin API, and runs target/release/tollgate-load
# at RATE requests/s (default 500 for all, 1000 for split; `max` for a
# closed loop) over CONNECTIONS connections for 8 s after a 2 s warmup.
# Over 5 s in the middle of the run it reads the gateway's CPU time (user
# and system, from /proc; summed over the five processes in split mode,
# and shown per process) and counts its context switches with
# `perf stat` (Debian linux-perf). Prints one line per run, for example
#   all: p50 0.369 ms p99 0.892 ms, 500 rps, 0 failed | 0.276 ms CPU and 5.6 context switches per request
#
# Run it on an otherwise idle machine, alternating the builds compared.
set -euo pipefail

mode=${1:?usage: cpu_per_request.sh all|split BIN [RATE CONNECTIONS]}
bin=${2:?usage: cpu_per_request.sh all|split BIN [RATE CONNECTIONS]}
root=$(cd "$(dirname "$0")/../../.." && pwd)
case $mode in
    all) rate=${3:-500} connections=${4:-8} ;;
    split) rate=${3:-1000} connections=${4:-16} ;;
    *)
        echo "cpu_per_request: mode must be all or split" >&2
        exit 1
        ;;
esac
load=${TOLLGATE_LOAD:-$root/target/release/tollgate-load}
for tool in "$bin" "$load"; do
    [[ -x $tool ]] || {
        echo "cpu_per_request: $tool is not an executable (cargo build --release -p tollgate -p tollgate-load)" >&2
        exit 1
    }
done
command -v perf >/dev/null || {
    echo "cpu_per_request: perf is required (apt install linux-perf)" >&2
    exit 1
}

out=$(mktemp -d /tmp/cpu-per-request.XXXXXX)
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
clean=(env -i "PATH=$PATH" "HOME=${HOME:-/root}")
started=()
cleanup() {
    local pid
    for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

mock_port=$(free_port)
"${clean[@]}" "$bin" mock-upstream --listen "127.0.0.1:$mock_port" >"$out/mock.log" 2>&1 &
started+=($!)

if [[ $mode == all ]]; then
    api_port=$(free_port) admin_port=$(free_port)
    "${clean[@]}" "TOLLGATE_ADMIN_TOKEN=$token" "$bin" all --listen "127.0.0.1:$api_port" \
        --admin-listen "127.0.0.1:$admin_port" --data-dir "$out/data" >"$out/all.log" 2>&1 &
    started+=($!)
    pids=($!)
else
    offset=${SPLIT_PORT_OFFSET:-31000}
    api_port=$((8080 + offset)) admin_port=$((8081 + offset))
    "${clean[@]}" "TOLLGATE_ADMIN_TOKEN=$token" "TOLLGATE_BIN=$bin" "SPLIT_PORT_OFFSET=$offset" \
        "$root/scripts/split" "$out/data" >"$out/split.log" 2>&1 &
    started+=($!)
fi
for _ in $(seq 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$api_port/healthz" 2>/dev/null && break
    sleep 0.2
done
if [[ $mode == split ]]; then
    read -ra pids <<<"$(tr -cs '0-9' ' ' <"$out/data/split.pids")"
fi

auth=(-H "Authorization: Bearer $token" -H "Content-Type: application/json")
curl -fsS "${auth[@]}" -o /dev/null "http://127.0.0.1:$admin_port/admin/v1/accounts" -d "{
    \"provider\": \"openai_compatible\", \"name\": \"bench\", \"secret\": \"sk-bench\",
    \"base_url\": \"http://127.0.0.1:$mock_port/v1\", \"models\": [\"bench-model\"]}"
key=$(curl -fsS "${auth[@]}" "http://127.0.0.1:$admin_port/admin/v1/keys" -d '{"name": "bench"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

body='{"model":"bench-model","messages":[{"role":"user","content":"hello, benchmark"}],"max_tokens":16}'
if [[ $rate == max ]]; then pace=(--max); else pace=(--rate "$rate"); fi
"$load" --url "http://127.0.0.1:$api_port/v1/chat/completions" --body "$body" \
    -H "Authorization: Bearer $key" "${pace[@]}" -c "$connections" -d 8s --warmup 2s \
    --json --label "$mode" >"$out/load.json" 2>"$out/load.log" &
load_pid=$!

ticks() {
    local pid
    for pid in "${pids[@]}"; do
        echo "$pid $(awk '{print $14 + $15}' "/proc/$pid/stat") $(tr '\0' ' ' <"/proc/$pid/cmdline" | awk '{print $2}')"
    done
}
sleep 3
ticks >"$out/ticks.before"
perf stat -x, -e context-switches -p "$(
    IFS=,
    echo "${pids[*]}"
)" -- sleep 5 2>"$out/perf.txt"
ticks >"$out/ticks.after"
wait "$load_pid"

python3 - "$out" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
out, hz = sys.argv[1], int(sys.argv[2])
run = json.loads(open(f"{out}/load.json").read().strip().splitlines()[-1])
def read(name):
    return {pid: (int(ticks), role) for pid, ticks, role in (line.split() for line in open(f"{out}/{name}"))}
before, after = read("ticks.before"), read("ticks.after")
requests = run["rps"] * 5
switches = next(float(line.split(",")[0]) for line in open(f"{out}/perf.txt") if "context-switches" in line)
per_process = {role: (after[pid][0] - before[pid][0]) * 1000 / hz / requests for pid, (_, role) in before.items()}
total = sum(per_process.values())
failed = run["errors"] + run["non_2xx"]
print(f"{run['label']}: p50 {run['p50_ms']:.3f} ms p99 {run['p99_ms']:.3f} ms, {run['rps']:.0f} rps, {failed} failed"
      f" | {total:.3f} ms CPU and {switches / requests:.1f} context switches per request")
if len(per_process) > 1:
    print("  CPU per request: " + ", ".join(f"{role} {ms:.3f} ms" for role, ms in per_process.items()))
EOF
