#!/usr/bin/env bash
# A/B of `uring` changes (issue 22): builds of bingfa side by side with `reactor` as the ratio
# base, on the workloads the change could move, rounds interleaved.
#
#   bench/uring.sh [SECONDS] [ROUNDS] NAME=BINARY:MODEL...
#   e.g. bench/uring.sh 5 4 reactor=target/release/bingfa:reactor \
#            before=/tmp/bingfa-main:uring after=target/release/bingfa:uring
#
# Workloads, each on a fresh server (-w cores), as bench/run runs them: small (wrk -t2 -c100
# keep-alive, the ~600-byte page), pipeline (16 GETs per write, bench/pipeline.lua), 1m (a
# 1 MiB file, keep-alive), churn (`Connection: close`), idle (bench/tools idle: 9,000 keep-alive connections held, the
# server's PSS read while they are, then p99 of 2,000 fresh requests beside them, each on a
# new connection). CPU is the server's utime+stime over the client's run divided by the
# requests (bench/tools memtree --cpu). Round 1 also counts the server's system calls (perf
# stat -e raw_syscalls:sys_enter), which cost CPU of their own: the CPU and req/s medians are
# those of the other rounds. Each round runs the servers in the opposite order to the last.
# Prints one line per measurement, then a table of medians. Loopback only; bounded waits.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-4}
shift 2 || true
servers=("$@")
((${#servers[@]})) || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
workers=$(nproc)
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release -q --manifest-path bench/tools/Cargo.toml
tools=bench/tools/target/release
work=$(mktemp -d /tmp/bingfa-uring.XXXXXX)
server_pid=
cleanup() {
    [[ -z $server_pid ]] || kill -KILL "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/site"
{
    echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bench</title></head><body>'
    for i in $(seq 1 7); do echo "<p>Paragraph $i of the benchmark page, padding it out to size.</p>"; done
    echo '</body></html>'
} >"$work/site/index.html"
head -c 1048576 /dev/urandom >"$work/site/1m.bin"

start() { # BINARY MODEL
    port=$((20000 + RANDOM % 12768))
    "$1" "$work/site" -b "127.0.0.1:$port" -m "$2" -w "$workers" --max-connections 100000 \
        --shutdown-timeout 2 </dev/null >>"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 200); do
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/index.html" && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop() {
    kill -TERM "$server_pid" 2>/dev/null || true
    timeout 10 tail --pid="$server_pid" -f /dev/null || kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
cpu() { "$tools/memtree" --cpu "$server_pid"; }

load() { # ROUND NAME WORKLOAD: prints "NAME WORKLOAD ROUND RPS CPU_US_PER_REQ SYSCALLS_PER_REQ P99_MS"
    local round=$1 name=$2 wl=$3 args=() path=/index.html perf='' c0 c1 out=$work/wrk.txt req rps p99 sys=null
    case $wl in
        pipeline) args=(-s bench/pipeline.lua) ;;
        1m) path=/1m.bin ;;
        churn) args=(-H "Connection: close") ;;
    esac
    if ((round == 1)); then
        perf stat -x, -e raw_syscalls:sys_enter -p "$server_pid" -o "$work/perf.txt" </dev/null >/dev/null 2>&1 &
        perf=$!
        sleep 0.1
    fi
    c0=$(cpu)
    timeout -k 5 $((secs + 30)) wrk -t2 -c100 -d"${secs}s" --timeout 5s --latency "${args[@]}" \
        "http://127.0.0.1:$port$path" >"$out" 2>&1 || true
    c1=$(cpu)
    if [[ -n $perf ]]; then
        kill -INT "$perf" 2>/dev/null || true
        wait "$perf" 2>/dev/null || true
        sys=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$work/perf.txt")
    fi
    req=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/Requests\/sec:/ {print $2}' "$out")
    p99=$(awk '/^ +99%/ {v=$2; if (v ~ /us$/) v=v/1000; else if (v ~ /ms$/) v=v+0; else if (v ~ /s$/) v=v*1000; print v}' "$out")
    awk -v n="$name" -v w="$wl" -v r="$round" -v rps="${rps:-0}" -v c=$((c1 - c0)) -v q="${req:-0}" \
        -v s="$sys" -v p="${p99:-null}" 'BEGIN {
            printf "%s %s %s %.0f %.2f %s %s\n", n, w, r, rps, (q > 0 ? c / q : 0),
                (s ~ /^[0-9]+$/ && q > 0 ? sprintf("%.2f", s / q) : "null"), p }'
}

idle() { # ROUND NAME: prints "NAME idle ROUND PSS_KIB - - P99_MS (fresh connections)"
    local round=$1 name=$2 fifo=$work/idle.fifo out=$work/idle.out pss=null json
    rm -f "$fifo"
    mkfifo "$fifo"
    exec {ctl}<>"$fifo"
    timeout -k 5 300 "$tools/idle" --addr "127.0.0.1:$port" --conns 9000 --path /index.html \
        --fresh 2000 <"$fifo" >"$out" 2>/dev/null &
    local ipid=$!
    for _ in $(seq 1500); do
        grep -q '^held ' "$out" 2>/dev/null && break
        kill -0 "$ipid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q '^held ' "$out"; then
        sleep 1
        pss=$("$tools/memtree" "$server_pid" | awk '{print $1}')
    fi
    echo go >&"$ctl"
    wait "$ipid" || true
    exec {ctl}>&-
    json=$(grep '^{' "$out" | tail -n1 || true)
    echo "$name idle $round $pss - - $(sed -n 's/.*"fresh":{"n":[0-9]*,"failed":[0-9]*,"errors":{[^}]*},"p50_us":[0-9]*,"p99_us":\([0-9]*\).*/\1/p' <<<"$json" |
        awk '{printf "%.3f", $1 / 1000}')"
}

: >"$work/results"
for round in $(seq "$rounds"); do
    order=("${servers[@]}")
    if ((round % 2 == 0)); then
        mapfile -t order < <(printf '%s\n' "${servers[@]}" | tac)
    fi
    for wl in small pipeline 1m churn idle; do
        for s in "${order[@]}"; do
            name=${s%%=*} spec=${s#*=}
            start "${spec%:*}" "${spec##*:}" || { echo "$name did not start" >&2; stop; continue; }
            if [[ $wl == idle ]]; then idle "$round" "$name"; else load "$round" "$name" "$wl"; fi |
                tee -a "$work/results"
            stop
        done
    done
done

echo
echo "medians: req/s and CPU µs/req over rounds 2-$rounds (all rounds if one); syscalls/req of round 1;"
echo "idle: PSS KiB and p99 ms of fresh connections beside 9,000 idle ones, over all rounds"
awk -v rounds="$rounds" '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n == 0 ? "-" : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
    }
    {
        key = $1 " " $2
        if (!(key in seen)) { seen[key] = 1; keys[++k] = key }
        if ($2 == "idle") { pss[key] = pss[key] " " $4; p99[key] = p99[key] " " $7; next }
        if ($3 == 1 && $6 != "null") sys[key] = $6
        if ($3 > 1 || rounds == 1) { rps[key] = rps[key] " " $4; cpu[key] = cpu[key] " " $5; p99[key] = p99[key] " " $7 }
    }
    END {
        printf "%-10s %-9s %10s %8s %9s %8s %10s\n", "server", "workload", "req/s", "CPU µs", "syscalls", "p99 ms", "PSS KiB"
        for (i = 1; i <= k; i++) {
            split(keys[i], f, " ")
            if (f[2] == "idle") printf "%-10s %-9s %10s %8s %9s %8s %10s\n", f[1], f[2], "-", "-", "-", median(p99[keys[i]]), median(pss[keys[i]])
            else printf "%-10s %-9s %10s %8s %9s %8s %10s\n", f[1], f[2], median(rps[keys[i]]), median(cpu[keys[i]]), (keys[i] in sys ? sys[keys[i]] : "-"), median(p99[keys[i]]), "-"
        }
    }' "$work/results"
