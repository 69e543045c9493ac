#!/usr/bin/env bash
# The price of `--proxy-protocol` (issue 19: "PROXY protocol on: ≤ 3% below off on the
# small-file churn benchmark, ratio in one run"): new connections, each with one GET of the
# ~600-byte page and `Connection: close`, without the option and a bare request, then with it
# and a version 1, then a version 2 header opening each connection (bench/tools' `churn`:
# header and request in one write, as HAProxy sends them).
#
#   bench/proxy.sh [SECONDS] [ROUNDS] [MODELS] [THREADS]     defaults: 5 5 "reactor epoll thread" 16
#
# Each round runs every model in every configuration, back to back (interleaved, so that a
# moment of load on the shared machine does not fall on one configuration alone), in the
# opposite order every other round (so that load that grows or falls over a round does not
# favour the configuration that comes first). The table
# gives, per model and configuration, the median over the rounds of req/s and of the
# server's CPU time per request (utime+stime of its process tree over the run, divided by the
# requests: steadier than req/s here), and the median of each round's ratio to `off`. The
# client is a direct one, not HAProxy with `send-proxy-v2`: on two cores HAProxy would take
# about as much CPU as bingfa and its own connection handling would sit in both runs,
# diluting the difference being measured. Writes the table to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-5}
models=${3:-reactor epoll thread}
threads=${4:-16}
workers=$(nproc)
port=18093
work=$(mktemp -d)
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q
cargo build --release -q --manifest-path bench/tools/Cargo.toml
tools=bench/tools/target/release

: >"$work/results"
mkdir -p "$work/site"
{
    echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bench</title></head><body>'
    for i in $(seq 1 7); do echo "<p>Paragraph $i of the benchmark page, padding it out to size.</p>"; done
    echo '</body></html>'
} >"$work/site/index.html"

# A number from churn's one-line JSON, by its key.
json_num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

run() { # model config: one measurement, appended to the results as "MODEL CONFIG REQ/S CPU_US/REQ"
    local model=$1 config=$2 option=() proxy=none pid before after json requests failed
    [[ $config == off ]] || option=(--proxy-protocol) proxy=$config
    ./target/release/bingfa "$work/site" -b "127.0.0.1:$port" -m "$model" -w "$workers" \
        --max-connections 100000 "${option[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    "$tools/churn" --addr "127.0.0.1:$port" --proxy "$proxy" --secs 1 --threads "$threads" >/dev/null # warm-up
    before=$("$tools/memtree" --cpu "$pid")
    json=$("$tools/churn" --addr "127.0.0.1:$port" --proxy "$proxy" --secs "$secs" --threads "$threads")
    after=$("$tools/memtree" --cpu "$pid")
    requests=$(json_num requests "$json") failed=$(json_num failed "$json")
    ((failed == 0)) || echo "$model $config: $failed failed connections: $json" >&2
    awk -v m="$model" -v c="$config" -v r="$(json_num rate "$json")" -v b="$before" -v a="$after" -v n="$requests" \
        'BEGIN { printf "%s %s %.0f %.2f\n", m, c, r, (a - b) / n }' >>"$work/results"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
}

started=$(date -u '+%F %H:%M UTC')
load=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$rounds"); do
    order="off v1 v2"
    ((round % 2)) || order="v2 v1 off"
    for model in $models; do
        for config in $order; do run "$model" "$config"; done
    done
    echo "round $round done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Column COL (3: req/s, 4: CPU) of MODEL CONFIG in each round.
column() { awk -v m="$1" -v c="$2" -v k="$3" '$1 == m && $2 == c { print $k }' "$work/results"; }
# The median over the rounds of CONFIG's value over off's in the same round.
ratio() { paste <(column "$1" "$2" "$3") <(column "$1" off "$3") | awk '{ printf "%.3f\n", $1 / $2 }' | median; }

echo "bench/proxy.sh $secs $rounds \"$models\" $threads: -w $workers, churn --threads $threads" \
    "--secs $secs, median of $rounds rounds; $started (load average at start: $load)"
echo
echo "| model | PROXY header | req/s | req/s vs off | CPU µs/request | CPU vs off |"
echo "|---|---|---:|---:|---:|---:|"
for model in $models; do
    for config in off v1 v2; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$model" "$config" \
            "$(column "$model" "$config" 3 | median)" "$(ratio "$model" "$config" 3)" \
            "$(column "$model" "$config" 4 | median)" "$(ratio "$model" "$config" 4)"
    done
done
echo
echo "every round (model, configuration, req/s, CPU µs/request):"
echo
echo '```'
cat "$work/results"
echo '```'
