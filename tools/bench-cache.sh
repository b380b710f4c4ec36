#!/usr/bin/env bash
# Cache-HIT benchmark in the style of ../shared/bench: nginx with proxy_cache against
# pingora with `cache: true`, both one worker/thread pinned to CPU 1, origin (nginx) and
# wrk on CPU 0, every request a cache HIT (1 KiB body, Cache-Control: max-age=3600).
# Prints req/s and proxy CPU us/req, median of ROUNDS rounds (default 3) of SECS s.
#   tools/bench-cache.sh target/release/pingora [ROUNDS] [SECS]
set -euo pipefail
BIN=$(realpath "$1"); ROUNDS=${2:-3}; SECS=${3:-8}
dir=$(mktemp -d /tmp/pingora-bench-cache.XXXXXX)
trap 'nginx -c $dir/origin.conf -s stop 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
O=$(free_port); N=$(free_port); P=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' a)
cat > "$dir/origin.conf" <<CONF
worker_processes 1; pid $dir/origin.pid; error_log $dir/origin.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$O; location / { add_header Cache-Control "max-age=3600"; return 200 "$body"; } } }
CONF
cat > "$dir/nginx.conf" <<CONF
worker_processes 1; pid $dir/nginx.pid; error_log $dir/nginx.err; daemon off;
events { worker_connections 4096; }
http { access_log off;
  proxy_cache_path $dir/cache keys_zone=c:10m max_size=256m;
  upstream o { server 127.0.0.1:$O; keepalive 128; }
  server { listen 127.0.0.1:$N;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_cache c; proxy_cache_valid 200 1h; add_header X-Cache-Status \$upstream_cache_status; } } }
CONF
cat > "$dir/pingora.yaml" <<CONF
version: 1
threads: 1
pid_file: $dir/pingora.pid
upgrade_sock: $dir/upgrade.sock
log_level: warn
services:
  - name: bench
    listeners: [ { addr: "127.0.0.1:$P" } ]
    cache: { max_bytes: 268435456 }
    routes: [ { upstream: origin, cache: true } ]
    upstreams: { origin: { peers: ["127.0.0.1:$O"] } }
CONF
chmod 755 "$dir"; mkdir -m 777 "$dir/cache"
taskset -c 0 nginx -c "$dir/origin.conf"
measure() { # name port cmd...
  local name=$1 port=$2; shift 2
  taskset -c 1 "$@" > "$dir/$name.out" 2>&1 & local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  local status; status=$(curl -s -o /dev/null -D - "http://127.0.0.1:$port/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}')
  taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" > /dev/null
  local pids; pids=$(pgrep -s "$(ps -o sid= -p $pid | tr -d ' ')" 2>/dev/null || echo $pid)
  local t0=0 t1=0
  for p in $pids; do t0=$((t0 + $(awk '{print $14+$15}' /proc/$p/stat))); done
  local out; out=$(taskset -c 0 wrk -t1 -c64 -d${SECS}s "http://127.0.0.1:$port/")
  for p in $pids; do t1=$((t1 + $(awk '{print $14+$15}' /proc/$p/stat))); done
  kill -INT $pid 2>/dev/null; sleep 0.3; kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  local rps; rps=$(echo "$out" | awk '/^Requests\/sec/{print $2}')
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}'); non2xx=${non2xx:-0}
  python3 -c "print('$name', 'status=$status', 'rps', $rps, 'cpu_us_per_req', round(($t1-$t0)*10000/($rps*$SECS),2), 'non2xx', $non2xx)"
}
for r in $(seq "$ROUNDS"); do
  measure nginx "$N" setsid nginx -c "$dir/nginx.conf"
  measure ours "$P" setsid "$BIN" -c "$dir/pingora.yaml"
done
