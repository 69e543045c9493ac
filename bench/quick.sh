#!/usr/bin/env bash
# Quick side-by-side: req/s for a ~600-byte page, every bingfa model beside nginx in the same
# run, with keep-alive and with connection churn (`Connection: close`). nginx keeps its
# default `tcp_nopush off`, its better setting for a small page (bench/run measures both).
#
#   bench/quick.sh [SECONDS] [CONNECTIONS] [MODEL...]     defaults: 5 100, all models
#
# Needs wrk and nginx-light (apt-get install wrk nginx-light). Loopback only; every run is
# bounded by SECONDS. Numbers on a shared 2-core machine are noisy: compare within one run.
# The full harness (more workloads, memory, the connections sweep, BENCHMARKS.md) is bench/run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-100}
shift $(($# < 2 ? $# : 2))
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(process thread pool async nonblocking poll epoll reactor prefork uring)
workers=$(nproc)
work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as nobody: a 0700 folder would give them 403s
cleanup() {
    [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    kill $(jobs -p) 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q
mkdir -p "$work/site"
{
    echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bench</title></head><body>'
    for i in $(seq 1 7); do echo "<p>Paragraph $i of the benchmark page, padding it out to size.</p>"; done
    echo '</body></html>'
} > "$work/site/index.html"
size=$(stat -c %s "$work/site/index.html")

cat > "$work/nginx.conf" <<CONF
worker_processes $workers;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 10240; }
http {
    access_log off;
    sendfile on;
    open_file_cache max=1000;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:18080 reuseport;
        root $work/site;
    }
}
CONF

rps() { # url [extra wrk args...]
    wrk -t2 -c"$conns" -d"${secs}s" "$@" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}

row() { # name url
    local keep close
    keep=$(rps "$2")
    close=$(rps "$2" -H "Connection: close")
    printf '| %-11s | %10s | %10s |\n' "$1" "$keep" "$close"
}

echo "index.html ($size bytes); wrk -t2 -c$conns -d${secs}s; $workers cores; $(date -u '+%F %H:%M UTC')"
echo
echo "| server      | keep-alive | churn      |"
echo "|-------------|-----------:|-----------:|"
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5
row "nginx" http://127.0.0.1:18080/index.html
kill "$(cat "$work/nginx.pid")"
rm -f "$work/nginx.pid"
for model in "${models[@]}"; do
    ./target/release/bingfa "$work/site" -b 127.0.0.1:18081 -m "$model" -w "$workers" >/dev/null &
    pid=$!
    sleep 0.5
    row "$model" http://127.0.0.1:18081/index.html
    kill -TERM "$pid"
    wait "$pid" || true
done
