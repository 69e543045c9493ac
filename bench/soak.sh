#!/usr/bin/env bash
# Soak: SECONDS of mixed load on one bingfa server, checking that its memory stays flat and
# that its open descriptors come back to the baseline once the load stops.
#
#   bench/soak.sh [SECONDS] [MODEL]       defaults: 600 reactor
#
# The load, all on 127.0.0.1 and all bounded by SECONDS, runs at the same time:
#   wrk -t1 -c20           keep-alive GETs of index.html (~600 bytes)
#   wrk -t1 -c10 + close   connection churn (`Connection: close`)
#   bench/soak_clients.py  pipeline  16 GETs per write, every response checked
#                          range     single, suffix, open, multi (multipart) and 416 ranges on
#                                    the 1 MiB file, checked byte for byte
#                          slow      heads a byte at a time: some complete (expect 200), some
#                                    stop half way or trickle forever (the header timeout must
#                                    close them), keep-alive connections left idle (the idle
#                                    timeout must close them)
#                          reset     GET of the 64 MiB file, read a little, RST (SO_LINGER 0)
#                          stall     GET of the 64 MiB file and never read (the send timeout
#                                    must drop them)
# The server runs with --header-timeout 5 --idle-timeout 10 --send-timeout 5.
#
# Every 10 s the server's RSS (VmRSS, summed over the process and its descendants for the
# forking models) and its open descriptors (/proc/PID/fd, summed likewise) go to soak.csv.
# When the load stops, the slow and stall clients leave a last set of misbehaving connections
# open (5 slow or idle, 3 never reading) and do not close them: only the server's timeouts can
# free those. The script then waits (at most header + idle + send timeouts + 10 s) for the
# descriptors to come back, and checks:
#   1. the server is still running;
#   2. descriptors: final <= baseline + 2, the baseline taken after start and one warm-up
#      request, the final count with the held connections still open on the client side;
#   3. RSS: the last sample under load <= the sample at 20% of the run + max(10%, 8 MiB);
#   4. no client saw a wrong answer (bad status, wrong bytes, a timeout not enforced within
#      15 s of its due time).
# It prints a summary and exits 1 if a check fails. Results (soak.csv, the server's log, wrk
# output, client stats as JSON, summary.txt) stay in $SOAK_OUT (default: a new /tmp directory).
#
# Needs wrk, python3 and curl (apt-get install wrk curl python3). Every process it starts is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
model=${2:-reactor}
[[ $secs =~ ^[0-9]+$ && $secs -ge 30 ]] || { echo "SECONDS must be a whole number >= 30" >&2; exit 2; }
for tool in wrk python3 curl; do
    command -v "$tool" >/dev/null || { echo "soak.sh needs $tool (apt-get install $tool)" >&2; exit 2; }
done

header_timeout=5
idle_timeout=10
send_timeout=5
fd_tolerance=2
rss_pct=10
rss_floor_kib=$((8 * 1024))
sample_every=10

work=$(mktemp -d /tmp/bingfa-soak-site.XXXXXX)
out=${SOAK_OUT:-$(mktemp -d /tmp/bingfa-soak.XXXXXX)}
mkdir -p "$out"
server_pid=
load_pids=()
cleanup() {
    local pid
    for pid in "${load_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null || true
    for pid in "${load_pids[@]}" $server_pid; do
        # Bounded: a process that ignores SIGTERM for 5 s gets SIGKILL.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building (cargo build --release)"
cargo build --release -q

# Fixture: a ~600-byte page, a 1 MiB and a 64 MiB file of random bytes.
mkdir -p "$work/site"
{
    echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>soak</title></head><body>'
    for i in $(seq 1 7); do echo "<p>Paragraph $i of the soak test page, padding it out to size.</p>"; done
    echo '</body></html>'
} > "$work/site/index.html"
head -c $((1 << 20)) /dev/urandom > "$work/site/1m.bin"
head -c $((64 << 20)) /dev/urandom > "$work/site/64m.bin"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
./target/release/bingfa "$work/site" -b "127.0.0.1:$port" -m "$model" \
    --header-timeout $header_timeout --idle-timeout $idle_timeout --send-timeout $send_timeout \
    </dev/null >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "$base/index.html" && break
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited at start:" >&2; cat "$out/server.log" >&2; exit 1; }
    sleep 0.1
done

# The server's process tree: the pid and every descendant (the forking models).
tree() {
    local pids=("$1") i=0 kids
    while ((i < ${#pids[@]})); do
        kids=$(cat /proc/"${pids[i]}"/task/*/children 2>/dev/null || true)
        for k in $kids; do pids+=("$k"); done
        i=$((i + 1))
    done
    echo "${pids[@]}"
}
rss_kib() { # summed VmRSS in KiB
    local total=0 p v
    for p in $(tree "$server_pid"); do
        v=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
fds() { # summed open descriptors
    local total=0 p n
    for p in $(tree "$server_pid"); do
        n=$(ls /proc/"$p"/fd 2>/dev/null | wc -l || true)
        total=$((total + ${n:-0}))
    done
    echo "$total"
}
alive() { kill -0 "$server_pid" 2>/dev/null; }

curl -sf -o /dev/null "$base/index.html"   # the warm-up request
sleep 0.5
baseline_fds=$(fds)
baseline_rss=$(rss_kib)
echo "server pid $server_pid ($model) on $base; baseline: $baseline_fds descriptors, RSS $baseline_rss KiB"
echo "running ${secs}s of mixed load; results in $out"

csv=$out/soak.csv
echo "t_s,phase,rss_kib,fds,processes" > "$csv"
sample() { # phase
    echo "$(($(date +%s) - start)),$1,$(rss_kib),$(fds),$(tree "$server_pid" | wc -w)" >> "$csv"
}

start=$(date +%s)
sample start
wrk -t1 -c20 -d"${secs}s" --timeout 10s "$base/index.html" > "$out/wrk-keepalive.txt" 2>&1 &
load_pids+=($!)
wrk -t1 -c10 -d"${secs}s" --timeout 10s -H "Connection: close" "$base/index.html" > "$out/wrk-churn.txt" 2>&1 &
load_pids+=($!)
client() { # mode concurrency [--hold]
    python3 bench/soak_clients.py "$1" --port "$port" --site "$work/site" --duration "$secs" \
        --concurrency "$2" --stats "$out/client-$1.json" --header-timeout $header_timeout \
        --idle-timeout $idle_timeout --send-timeout $send_timeout "${@:3}" \
        > "$out/client-$1.log" 2>&1 &
    load_pids+=($!)
}
client pipeline 2
client range 2
client slow 8 --hold
client reset 2
client stall 2 --hold

# Sample every 10 s; stop early if the server dies.
died=0
next=$sample_every
while (($(date +%s) - start < secs)); do
    sleep 1
    alive || { died=1; echo "the server died $(($(date +%s) - start)) s into the run" >&2; break; }
    if (($(date +%s) - start >= next)); then
        sample load
        next=$((next + sample_every))
    fi
done
# The last sample under load, unless the loop just took it.
if alive && (($(tail -n1 "$csv" | cut -d, -f1) < secs)); then sample load; fi

# Load over: wrk and the loops end by themselves; wait for them (bounded), then for the held
# connections to be in place.
loop_limit=$((idle_timeout + header_timeout + 2 * send_timeout + 45))
for pid in "${load_pids[@]:0:2}"; do wait "$pid" 2>/dev/null || true; done
held=0
for _ in $(seq $((loop_limit * 10))); do
    [[ -f $out/client-slow.json.holding && -f $out/client-stall.json.holding ]] && break
    sleep 0.1
done
for mode in slow stall; do
    [[ -f $out/client-$mode.json.holding ]] && held=$((held + $(cat "$out/client-$mode.json.holding")))
done
echo "load stopped; $held misbehaving connections held open by the clients; waiting for the server's timeouts"

# Wait for the timeouts (bounded) until the descriptors are back.
drain_limit=$((header_timeout + idle_timeout + send_timeout + 10))
waited=0
while ((waited < drain_limit)) && alive; do
    (($(fds) <= baseline_fds + fd_tolerance)) && break
    sleep 1
    waited=$((waited + 1))
done
alive || died=1
final_fds=$( ((died)) && echo NA || fds)
final_rss=$( ((died)) && echo NA || rss_kib)
((died)) || sample drained

# Release the held connections and let every client write its stats.
for pid in "${load_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${load_pids[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
sleep 2
after_release_fds=$( ((died)) && echo NA || fds)
((died)) || sample released

# --- summary -------------------------------------------------------------------------------
wrk_field() { # file: "requests errors"
    awk '/requests in/ {r = $1}
         /Socket errors/ {gsub(",", ""); e += $4 + $6 + $8 + $10}
         /Non-2xx/ {e += $NF}
         END {printf "%s %d", (r == "" ? "NA" : r), e}' "$1"
}
read -r ka_requests ka_errors <<< "$(wrk_field "$out/wrk-keepalive.txt")"
read -r churn_requests churn_errors <<< "$(wrk_field "$out/wrk-churn.txt")"

load_rows=$(awk -F, '$2 == "load" || $2 == "start"' "$csv")
at20=$((secs / 5))
rss20=$(awk -F, -v t=$at20 '$1 >= t {print $3; exit}' <<< "$load_rows")
rss_last=$(tail -n1 <<< "$load_rows" | cut -d, -f3)
rss_max=$(awk -F, 'NR > 1 && $3 > m {m = $3} END {print m + 0}' "$csv")
fds_max=$(awk -F, 'NR > 1 && $4 > m {m = $4} END {print m + 0}' "$csv")
rss20=${rss20:-0} rss_last=${rss_last:-0}
rss_allow=$(( rss20 * rss_pct / 100 > rss_floor_kib ? rss20 * rss_pct / 100 : rss_floor_kib ))

client_summary=$(python3 - "$out" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
bad = 0
for mode in ["pipeline", "range", "slow", "reset", "stall"]:
    path = os.path.join(out, f"client-{mode}.json")
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        print(f"  {mode:9} no stats (see client-{mode}.log)")
        bad += 1
        continue
    c = d["counts"]
    bad += c.get("bad", 0)
    keys = {k: v for k, v in c.items() if k not in ("loop_seconds",)}
    print(f"  {mode:9} " + ", ".join(f"{k} {v}" for k, v in keys.items()))
    for name, t in d.get("timings", {}).items():
        print(f"  {'':9} {name}: n {t['n']}, min {t['min']}, mean {t['mean']}, max {t['max']}")
    for h in d.get("hold", []):
        print(f"  {'':9} held at the end: " + ", ".join(f"{k} {v}" for k, v in h.items()))
    for note in d.get("notes", [])[:5]:
        print(f"  {'':9} ! {note}")
print(f"BAD {bad}")
PY
)
client_bad=$(awk '/^BAD / {print $2}' <<< "$client_summary")

check() { # 1|0 message
    if [[ $1 == 1 ]]; then echo "  ok    $2"; else echo "  FAIL  $2"; fi
}
{
    echo
    echo "bingfa soak: model $model, ${secs}s, $(nproc) cores, $(date -u '+%F %H:%M UTC')"
    echo "  server: --header-timeout $header_timeout --idle-timeout $idle_timeout --send-timeout $send_timeout"
    echo "  descriptors: baseline $baseline_fds, max under load $fds_max, final $final_fds" \
         "(after ${waited}s of waiting, $held connections still held by clients)," \
         "after the clients let go $after_release_fds"
    if ((!died && final_fds > baseline_fds + fd_tolerance)); then
        if ((after_release_fds <= baseline_fds + fd_tolerance)); then
            echo "  -> the extra descriptors went away when the clients closed the held connections:" \
                 "connections a server timeout did not end (see 'held at the end'), not a leak"
        else
            echo "  -> descriptors stay open after every client is gone: a leak"
        fi
    fi
    echo "  RSS (KiB): baseline $baseline_rss, at 20% (t>=${at20}s) $rss20, last under load $rss_last," \
         "max $rss_max, after the drain $final_rss"
    echo "  wrk keep-alive: $ka_requests requests, $ka_errors errors;" \
         "wrk churn: $churn_requests requests, $churn_errors errors"
    grep -v '^BAD ' <<< "$client_summary"
    echo "checks:"
    check "$((!died))" "the server is running"
    check "$( ((!died && final_fds <= baseline_fds + fd_tolerance)) && echo 1 || echo 0)" \
        "descriptors back to the baseline: $final_fds <= $baseline_fds + $fd_tolerance"
    check "$( ((rss_last <= rss20 + rss_allow)) && echo 1 || echo 0)" \
        "RSS flat: last $rss_last KiB <= $rss20 + max(${rss_pct}%, 8 MiB) = $((rss20 + rss_allow)) KiB"
    check "$( ((client_bad == 0)) && echo 1 || echo 0)" "no wrong answers or unenforced timeouts seen by the clients ($client_bad)"
    echo "results: $out"
} | tee "$out/summary.txt"
grep -q '^  FAIL' "$out/summary.txt" && exit 1
exit 0
