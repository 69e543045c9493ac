#!/usr/bin/env bash
# The price of the site's rules (issue 18), as ratios measured in one run: the `reactor` model
# serving the ~600-byte page with no rules, then with 50 rules ([[headers]] and [[redirects]]
# tables, one of them matching every path), then behind basic auth with a cached credential;
# and `--compress` answering a 20 KB script from its cache beside nginx serving the same
# script's `.gz` sibling with `gzip_static`.
#
#   bench/site.sh [SECONDS] [ROUNDS]          defaults: 5 3
#
# The table goes to stdout and to bench/results/site.md.
#
# Each round runs every configuration once, back to back (interleaved, so that a moment of load
# on the shared machine does not fall on one configuration alone); the table gives the median
# of the rounds for req/s and for the server's CPU time per request (utime+stime of its process
# tree over the run, divided by the requests: steadier than req/s here). wrk -t2 -c100.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
workers=$(nproc)
work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as nobody
cleanup() {
    [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    kill $(jobs -p) 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q
cargo build --release -q --manifest-path bench/tools/Cargo.toml
tools=bench/tools/target/release

mkdir -p "$work/site"
{
    echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bench</title></head><body>'
    for i in $(seq 1 7); do echo "<p>Paragraph $i of the benchmark page, padding it out to size.</p>"; done
    echo '</body></html>'
} > "$work/site/index.html"
for i in $(seq 1 400); do echo "export function f$i(a, b) { return a * $i + b; } // script line $i"; done > "$work/site/app.js"
gzip -k -6 "$work/site/app.js" # nginx's gzip_static sibling; bingfa --compress makes its own

# 50 rules: 25 header tables (one matching every path), 25 redirects that match none.
{
    echo '[[headers]]'
    echo 'path = "/**"'
    echo 'set = { "X-Frame-Options" = "DENY" }'
    for i in $(seq 1 24); do
        printf '[[headers]]\npath = "/assets%d/**"\nset = { "Cache-Control" = "no-store" }\n' "$i"
    done
    for i in $(seq 1 25); do
        printf '[[redirects]]\nfrom = "/old%d/*"\nto = "/new%d/:splat"\nstatus = 301\n' "$i" "$i"
    done
} > "$work/rules.toml"

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
    gzip_static on;
    server {
        listen 127.0.0.1:18090 reuseport;
        root $work/site;
    }
}
CONF

# One measurement: "REQ_PER_S CPU_US_PER_REQUEST" of the server PID for URL.
measure() { # pid url [wrk args...]
    local pid=$1 url=$2
    shift 2
    local before after out requests
    before=$("$tools/memtree" --cpu "$pid")
    out=$(wrk -t2 -c100 -d"${secs}s" "$@" "$url")
    after=$("$tools/memtree" --cpu "$pid")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    awk -v out="$(awk '/Requests\/sec/ {print $2}' <<<"$out")" -v b="$before" -v a="$after" -v n="$requests" \
        'BEGIN { printf "%.0f %.2f\n", out, (a - b) / n }'
}

bingfa() { # args... ; serves on :18091, prints its pid
    ./target/release/bingfa "$work/site" -b 127.0.0.1:18091 -w "$workers" "$@" >/dev/null 2>&1 &
    echo $!
}

run() { # name url server-kind [args...]
    local name=$1 url=$2 kind=$3
    shift 3
    local pid
    if [[ $kind == nginx ]]; then
        nginx -c "$work/nginx.conf" -p "$work"
        sleep 0.5
        pid=$(cat "$work/nginx.pid")
    else
        pid=$(bingfa "$@")
        sleep 0.5
    fi
    local headers=()
    [[ $name == compress* || $name == nginx* ]] && headers=(-H "Accept-Encoding: gzip")
    [[ $name == auth* ]] && headers=(-H "Authorization: Basic $(printf 'bench:bench' | base64)")
    # Warm the caches (the compressed copy, the credential) before measuring.
    curl -s -o /dev/null "${headers[@]}" "$url" || true
    sleep 0.3
    echo "$name $(measure "$pid" "$url" "${headers[@]}")" >> "$work/results"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$work/nginx.pid"
}

hash=$(printf 'bench\n' | ./target/release/bingfa --hash-password)
printf '[[auth]]\npath = "/**"\nrealm = "bench"\nusers = ["bench:%s"]\n' "$hash" > "$work/auth.toml"

for round in $(seq 1 "$rounds"); do
    run none http://127.0.0.1:18091/index.html bingfa
    run rules50 http://127.0.0.1:18091/index.html bingfa --config "$work/rules.toml"
    run auth http://127.0.0.1:18091/index.html bingfa --config "$work/auth.toml"
    run compress http://127.0.0.1:18091/app.js bingfa --compress
    run nginx-gzip-static http://127.0.0.1:18090/app.js nginx
    echo "round $round done" >&2
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
report() {
    echo "# The price of the site's rules"
    echo
    echo "\`bench/site.sh $secs $rounds\`: reactor, -w $workers, wrk -t2 -c100 -d${secs}s, median of $rounds rounds; $(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo
    echo "| configuration | req/s | CPU µs/request |"
    echo "|---|---:|---:|"
    for name in none rules50 auth compress nginx-gzip-static; do
        grep -q "^$name " "$work/results" || continue
        rps=$(awk -v n="$name" '$1 == n {print $2}' "$work/results" | median)
        cpu=$(awk -v n="$name" '$1 == n {print $3}' "$work/results" | median)
        echo "| $name | $rps | $cpu |"
    done
    echo
    echo "Every round (configuration, req/s, CPU µs/request):"
    echo
    sed 's/^/    /' "$work/results"
}
# The table is kept in bench/results/site.md, which the README's "Site rules" cites.
report | tee bench/results/site.md
