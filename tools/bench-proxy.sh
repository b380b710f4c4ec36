#!/usr/bin/env bash
# Runs the pingora binary as a proxy for ../shared/bench/run.sh:
#   ../shared/bench/run.sh --proxy ours='tools/bench-proxy.sh target/release/pingora {listen} {upstream}'
# Writes a one-service config (1 thread, like the other peers) to a temp dir and execs
# the binary in the foreground so the bench measures its CPU.
# BENCH_POLICY=edits adds five header edits and a rewrite to the route (the cost of
# request policy, docs/benchmarks.md); unset, the route has no policy keys.
set -euo pipefail
bin=$1 port=$2 upstream=$3
route="      - upstream: origin"
if [[ "${BENCH_POLICY:-}" == edits ]]; then
    route="      - upstream: origin
        rewrite: { regex: \"^/(.*)\$\", replace: \"/\$1\" }
        request_headers:
          remove: [X-Debug]
          set: { X-Env: bench, X-Proxy: pingora }
          add: { X-Host: \$host, X-UA: \$http_user_agent }"
fi
dir=$(mktemp -d /tmp/pingora-bench.XXXXXX)
cat > "$dir/conf.yaml" <<CONF
version: 1
threads: 1
pid_file: $dir/pingora.pid
upgrade_sock: $dir/upgrade.sock
upstream_keepalive_pool_size: 128
services:
  - name: bench
    listeners:
      - addr: 127.0.0.1:$port
    routes:
$route
    upstreams:
      origin:
        peers: ["$upstream"]
CONF
PINGORA_LOG=${PINGORA_LOG:-warn} exec "$bin" -c "$dir/conf.yaml"
