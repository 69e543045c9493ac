#!/usr/bin/env bash
# Instructions per request of one model on the ~600-byte page, counted by callgrind: a number
# that does not move with the machine's load, unlike req/s.
#
#   bench/callgrind.sh [MODEL] [DEPTH]      defaults: reactor 1 (DEPTH: requests pipelined per write)
#
# ARGS adds options to the server's command line, HEADER a request field, so that the price of
# a feature is the difference of two runs, e.g. of basic auth with a cached credential:
#   ARGS="--config auth.toml" HEADER="Authorization: Basic YmVuY2g6YmVuY2g=" bench/callgrind.sh
#
# (Ports 20000-31999: below the ephemeral range, where a client socket may hold the port.)
# Runs the server under `valgrind --tool=callgrind` with one worker twice, for N1 and N2
# keep-alive requests over 4 connections, and prints (Ir(N2) - Ir(N1)) / (N2 - N1): start-up
# and shutdown cancel out. Only user-space instructions are counted; the kernel's TCP work is not.
# Needs valgrind and python3. The profile of the larger run stays in $OUT (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-reactor}
depth=${2:-1}
out=${OUT:-/tmp}
n1=$((2000 * depth)) n2=$((10000 * depth))
cargo build --release -q
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
python3 bench/page.py > "$site/index.html"

instructions() { # requests
    local port=$((20000 + RANDOM % 12000)) file="$out/callgrind.$model.$depth.$1"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        ./target/release/bingfa "$site" -b "127.0.0.1:$port" -m "$model" -w 1 ${ARGS:-} >/dev/null 2>"$file.log" &
    local pid=$!
    python3 bench/keepalive_client.py "$port" "$1" 4 "$depth" "${HEADER:-}" >/dev/null
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^summary:/ {print $2}' "$file"
}

a=$(instructions "$n1")
b=$(instructions "$n2")
echo "$model, $depth per write: $(((b - a) / (n2 - n1))) instructions per request (callgrind, $(date -u +%F))"
