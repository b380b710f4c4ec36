#!/usr/bin/env bash
# Profiles the proxy (or counts its system calls) under one case of the side-by-side
# bench (../shared/bench/run.sh): a local nginx origin serving 1 KiB on / and 100 KiB on
# /big, the proxy under test pinned to CPU 1, origin and load generator on CPU 0.
#
#   tools/profile.sh [--case h1|big|h2c] [--duration S] [--out DIR] BIN
#       perf record (DWARF call graphs) of BIN (the `pingora` binary, run through
#       tools/bench-proxy.sh) under wrk/h2load for S seconds (default 10), then
#       DIR/perf.txt (top functions, self and inclusive) and DIR/flame.svg (a flame
#       graph made with inferno: `cargo install inferno`).
#   tools/profile.sh --syscalls [--case ...] [--requests N] [--out DIR] BIN|nginx
#       strace -c -f of the proxy over N requests (default 10000, keep-alive, after a
#       warm-up), into DIR/syscalls-NAME-CASE.txt, with the calls per request; `nginx`
#       profiles the bench's nginx proxy configuration instead of BIN.
#
# Everything runs on 127.0.0.1 and stops by itself; the temp dir is removed at the end.
# Needs nginx, wrk and h2load (nghttp2-client), perf or strace, and for the flame graph
# inferno-collapse-perf and inferno-flamegraph on PATH (or in ~/.cargo/bin).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin:$HOME/.cargo/bin

case_=h1 duration=10 out=profile requests=10000 mode=perf
while [[ $# -gt 1 ]]; do
    case $1 in
        --case) case_=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --syscalls) mode=strace; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
target=${1:?usage: tools/profile.sh [--syscalls] [--case h1|big|h2c] [--duration S] [--requests N] [--out DIR] BIN|nginx}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/pingora-profile.XXXXXX)
chmod 755 "$work" # the nginx worker (not root) reads the origin files
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}
nginx_head() { # tag
    mkdir -p "$work/$1-tmp"
    cat <<EOF
worker_processes 1; daemon off; pid $work/$1.pid; error_log $work/$1.err warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $work/$1-tmp/body; proxy_temp_path $work/$1-tmp/proxy;
  fastcgi_temp_path $work/$1-tmp/fcgi; uwsgi_temp_path $work/$1-tmp/uwsgi; scgi_temp_path $work/$1-tmp/scgi;
  access_log off; keepalive_timeout 120s; keepalive_requests 1000000;
EOF
}

# The origin, as the bench's.
origin_port=$(free_port)
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' s > "$work/www/small"
head -c 102400 /dev/zero | tr '\0' b > "$work/www/big"
{ nginx_head origin; cat <<EOF
  sendfile on; tcp_nopush on; default_type application/octet-stream;
  server {
    listen 127.0.0.1:$origin_port backlog=4096;
    root $work/www;
    location = / { try_files /small =404; }
    location = /big { try_files /big =404; }
  }
}
EOF
} > "$work/origin.conf"
taskset -c 0 nginx -c "$work/origin.conf" -e "$work/origin.err" &
pids+=($!)
wait_port "$origin_port"

# The proxy under test, on CPU 1.
port=$(free_port)
if [[ $target == nginx ]]; then
    name=nginx h2_port=$(free_port)
    { nginx_head nginx; cat <<EOF
  upstream origin { server 127.0.0.1:$origin_port; keepalive 128; keepalive_requests 1000000; keepalive_timeout 120s; }
  server {
    listen 127.0.0.1:$port backlog=4096;
    listen 127.0.0.1:$h2_port http2 backlog=4096;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffers 32 8k; proxy_max_temp_file_size 0;
    }
  }
}
EOF
    } > "$work/nginx.conf"
    taskset -c 1 nginx -c "$work/nginx.conf" -e "$work/nginx.err" &
    pids+=($!)
    sleep 0.3
    proxy_pid=$(cat "$work/nginx.pid" 2>/dev/null || true)
    # The worker is the one child of the master.
    proxy_pid=$(pgrep -P "${proxy_pid:-$!}" | head -1)
else
    name=ours h2_port=$port
    taskset -c 1 "$here/bench-proxy.sh" "$target" "$port" "127.0.0.1:$origin_port" &
    proxy_pid=$!
    pids+=("$proxy_pid")
fi
wait_port "$port"

load() { # seconds-or-requests: runs the case's load generator on CPU 0
    local what=$1
    case $case_ in
        h1|big)
            local path=/ ; [[ $case_ == big ]] && path=/big
            if [[ $what == *s ]]; then
                taskset -c 0 wrk -t1 -c64 -d"$what" "http://127.0.0.1:$port$path" > "$work/load.txt"
            else
                taskset -c 0 h2load --h1 -t1 -c64 -n"$what" "http://127.0.0.1:$port$path" > "$work/load.txt"
            fi ;;
        h2c)
            if [[ $what == *s ]]; then
                taskset -c 0 h2load -t1 -c16 -m4 -D"${what%s}" "http://127.0.0.1:$h2_port/" > "$work/load.txt"
            else
                taskset -c 0 h2load -t1 -c16 -m4 -n"$what" "http://127.0.0.1:$h2_port/" > "$work/load.txt"
            fi ;;
        *) echo "unknown case $case_ (h1, big or h2c)" >&2; exit 2 ;;
    esac
}

load 1s # warm-up: connections and the upstream pool
if [[ $mode == perf ]]; then
    perf record -F 999 --call-graph dwarf,16384 -p "$proxy_pid" -o "$work/perf.data" -- sleep "$duration" \
        2> "$work/perf.err" &
    rec=$!
    load "${duration}s"
    wait "$rec" || true
    grep -E "Requests/sec|requests:" "$work/load.txt" || true
    perf report -i "$work/perf.data" --no-children --percent-limit 0.5 --stdio 2>/dev/null \
        | grep -v '^$' | head -120 > "$out/perf.txt" || true
    perf report -i "$work/perf.data" --children --percent-limit 2 --stdio -g none 2>/dev/null \
        | grep -v '^$' >> "$out/perf.txt" || true
    if command -v inferno-collapse-perf > /dev/null; then
        perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded"
        inferno-flamegraph --title "pingora, case $case_" < "$work/folded" > "$out/flame.svg"
        echo "$out/flame.svg"
    else
        echo "no inferno-flamegraph on PATH: cargo install inferno (skipped the flame graph)" >&2
    fi
    echo "$out/perf.txt"
else
    strace -c -f -q -p "$proxy_pid" -o "$work/strace.txt" &
    tracer=$!
    sleep 0.5
    load "$requests"
    grep -E "requests:|status codes:" "$work/load.txt" || true
    kill -INT "$tracer"
    wait "$tracer" || true
    python3 - "$work/strace.txt" "$requests" "$name" "$case_" > "$out/syscalls-$name-$case_.txt" <<'EOF'
import sys
path, n, name, case = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"# {name}, case {case}: strace -c -f over {n} requests")
print(f"{'syscall':<16} {'calls':>9} {'errors':>7} {'per request':>11}")
total = 0
for line in open(path):
    f = line.split()
    if len(f) < 5 or not f[0][0].isdigit() or f[-1] == "total":
        continue
    calls, sc = int(f[3]), f[-1]
    errors = int(f[4]) if len(f) == 6 else 0
    total += calls
    print(f"{sc:<16} {calls:>9} {errors:>7} {calls / n:>11.2f}")
print(f"{'total':<16} {total:>9} {'':>7} {total / n:>11.2f}")
EOF
    cat "$out/syscalls-$name-$case_.txt"
fi
