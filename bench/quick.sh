#!/usr/bin/env bash
# Quick side-by-side: req/s for a ~600-byte file, keep-alive, each bingfa model beside nginx
# in the same run. Usage: bench/quick.sh [SECONDS] [CONNECTIONS]
# Needs: wrk, nginx-light (apt-get install wrk nginx-light). Loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-100}
workers=$(nproc)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release -q
mkdir -p "$work/site"
# A ~600-byte HTML page.
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
    tcp_nopush on;
    open_file_cache max=1000;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:18080 reuseport;
        root $work/site;
    }
}
CONF

measure() { # name url
    local out rps
    out=$(wrk -t2 -c"$conns" -d"${secs}s" "$2")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    printf '%-10s %12s req/s\n' "$1" "$rps"
}

echo "file: index.html, $size bytes; wrk -t2 -c$conns -d${secs}s; $workers cores; $(date -u +%F)"
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5
measure nginx http://127.0.0.1:18080/index.html
kill "$(cat "$work/nginx.pid")"; rm -f "$work/nginx.pid"
for model in thread epoll reactor; do
    ./target/release/bingfa "$work/site" -b 127.0.0.1:18081 -m "$model" -w "$workers" >/dev/null &
    pid=$!
    sleep 0.5
    measure "$model" http://127.0.0.1:18081/index.html
    kill -TERM "$pid"; wait "$pid" || true
done
