#!/usr/bin/env bash
# TLS benchmark in the style of tools/bench-cache.sh and ../shared/bench: nginx and the
# pingora binary terminate TLS on loopback with the SAME certificate and proxy to the same
# plain-HTTP/1.1 nginx origin (1 KiB body, upstream keep-alive). Each proxy: one
# worker/thread on CPU 1; origin and load generators on CPU 0. The proxy's CPU time is
# utime+stime of every process of its session, from /proc, before and after each run.
#
#   tools/bench-tls.sh target/release/pingora [ROUNDS=3] [SECS=8] [KEYS="ecdsa rsa"]
#
# KEYS: ecdsa = P-256, rsa = RSA 2048; one self-signed certificate per key type, minted
# here with openssl and used by every proxy. Cases (CASES="h2 h1 full resume"):
#   h2      HTTP/2 over TLS (ALPN h2): h2load -t1 -c16 -m4 -D SECS          [nginx, ours]
#   h1      HTTPS HTTP/1.1 keep-alive: wrk -t1 -c64 -d SECS                 [nginx, ours]
#   full    full TLS handshakes, no request: FULL_CLIENTS (4) parallel
#           `openssl s_time -new` (a new session every connection: the client never
#           offers one to resume); ops = handshakes                          [all peers]
#   resume  reconnect per request: h2load --h1 -H 'Connection: close' -c32; h2load keeps
#           each client's session, so every connection after a client's first one is
#           resumed where the server allows it (tickets); ops = connections [nginx-tickets, ours]
# Peers (PEERS="nginx nginx-tickets ours"): nginx = ssl_session_cache off and
# ssl_session_tickets off (no resumption at all); nginx-tickets = the same with tickets on
# (ours always issues TLS 1.3 tickets, so it pays for them in `full` too); ours = the
# binary. Accepted connections (TcpPassiveOpens of the namespace) are counted in `full`
# and `resume` to check one connection per op. Rounds alternate the peer order.
# Prints every sample and a markdown table of medians. KEEP=1 keeps the temp dir.
set -euo pipefail
BIN=$(realpath "$1"); ROUNDS=${2:-3}; SECS=${3:-8}; KEYS=${4:-"ecdsa rsa"}
CASES=${CASES:-"h2 h1 full resume"}; PEERS=${PEERS:-"nginx nginx-tickets ours"}
FULL_CLIENTS=${FULL_CLIENTS:-4}; RESUME_CONNS=${RESUME_CONNS:-32}
dir=$(mktemp -d /tmp/pingora-bench-tls.XXXXXX)
cleanup() {
  nginx -c "$dir/origin.conf" -s stop 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
passive_opens() { awk '/^Tcp:/{if(!h){for(i=1;i<=NF;i++)n[i]=$i;h=1}else{for(i=1;i<=NF;i++)if(n[i]=="PassiveOpens")print $i}}' /proc/net/snmp; }
cpu_ticks() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
peak_rss_kib() { local m=0 p v; for p in $1; do v=$(awk '/^VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); [ "${v:-0}" -gt $m ] && m=$v; done; echo $m; }
now() { date +%s.%N; }
[ "$(getconf CLK_TCK)" = 100 ] || { echo "expects CLK_TCK=100" >&2; exit 2; }

# --- certificates: one per key type, shared by every proxy ---
for key in $KEYS; do
  case $key in
    ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
    rsa) newkey=(-newkey rsa:2048) ;;
    *) echo "unknown key type $key (ecdsa|rsa)" >&2; exit 2 ;;
  esac
  openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/$key.key" -out "$dir/$key.pem" 2>/dev/null
done

# --- origin: plain HTTP/1.1 nginx on CPU 0 ---
O=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' a)
cat > "$dir/origin.conf" <<CONF
worker_processes 1; pid $dir/origin.pid; error_log $dir/origin.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$O; location / { return 200 "$body"; } } }
CONF
taskset -c 0 nginx -c "$dir/origin.conf"

# --- proxy configs, per peer and key type ---
write_nginx() { # file port key tickets(on|off)
  cat > "$1" <<CONF
worker_processes 1; pid $dir/nginx.pid; error_log $dir/nginx.err; daemon off;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  upstream o { server 127.0.0.1:$O; keepalive 128; }
  server { listen 127.0.0.1:$2 ssl http2;
    ssl_certificate $dir/$3.pem; ssl_certificate_key $dir/$3.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets $4;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffers 32 8k; } } }
CONF
}
write_ours() { # file port key
  cat > "$1" <<CONF
version: 1
threads: 1
pid_file: $dir/pingora.pid
upgrade_sock: $dir/upgrade.sock
log_level: warn
upstream_keepalive_pool_size: 128
services:
  - name: bench
    listeners: [ { addr: "127.0.0.1:$2", tls: { cert: "$dir/$3.pem", key: "$dir/$3.key" } } ]
    routes: [ { upstream: origin } ]
    upstreams: { origin: { peers: ["127.0.0.1:$O"] } }
CONF
}
declare -A PORT CMD
for key in $KEYS; do
  for peer in $PEERS; do
    port=$(free_port); PORT[$peer-$key]=$port
    case $peer in
      nginx) write_nginx "$dir/$peer-$key.conf" "$port" "$key" off; CMD[$peer-$key]="nginx -c $dir/$peer-$key.conf" ;;
      nginx-tickets) write_nginx "$dir/$peer-$key.conf" "$port" "$key" on; CMD[$peer-$key]="nginx -c $dir/$peer-$key.conf" ;;
      ours) write_ours "$dir/$peer-$key.yaml" "$port" "$key"; CMD[$peer-$key]="$BIN -c $dir/$peer-$key.yaml" ;;
      *) echo "unknown peer $peer (nginx|nginx-tickets|ours)" >&2; exit 2 ;;
    esac
  done
done
peer_cases() { # the cases of CASES this peer runs
  local all
  case $1 in nginx) all="h2 h1 full" ;; nginx-tickets) all="full resume" ;; ours) all="h2 h1 full resume" ;; esac
  for c in $CASES; do [[ " $all " == *" $c "* ]] && printf '%s ' "$c"; done
}

# Parses a load generator's output into one row of $dir/rows:
# key peer case round ops/s cpu_us_per_op errors proxy_cpu_% extra
cat > "$dir/parse.py" <<'PY'
import re, sys
tool, key, peer, case, rnd, ticks, secs, opens, extra, out = sys.argv[1:11]
cpu_us, wall = int(ticks) * 10000, float(secs)
def h2load(out):
    m = re.search(r"finished in ([\d.]+)(m?s)", out)
    t = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    s = re.search(r"status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx", out)
    err = int(m.group(2)) + int(m.group(3)) + int(m.group(4)) + int(s.group(1)) + int(s.group(2))
    tls = "/".join(x.group(1) for x in (re.search(p, out) for p in (
        r"TLS Protocol: (\S+)", r"Cipher: (\S+)", r"Server Temp Key: (\S+)", r"Application protocol: (\S+)")) if x)
    return int(m.group(1)), t, err, tls
if tool == "h2load":
    n, wall, err, info = h2load(out)
elif tool == "wrk":
    n = int(re.search(r"(\d+) requests in", out).group(1))
    err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out); err += int(m.group(1)) if m else 0
    info = "p50=%s p99=%s" % (re.search(r"50%\s+(\S+)", out).group(1), re.search(r"99%\s+(\S+)", out).group(1))
else:  # s_time, several outputs concatenated
    n = sum(int(x) for x in re.findall(r"(\d+) connections in \d+ real seconds", out))
    err = len(re.findall(r"ERROR|error", out)) + (0 if n else 1)
    info = ""
if opens != "-":
    info += " conns/op=%.3f" % (int(opens) / max(n, 1))
info = (info + " " + extra).strip()
print(key, peer, case, rnd, round(n / wall, 1), round(cpu_us / max(n, 1), 2), err,
      round(cpu_us / 1e4 / wall, 1), info, sep="\t")
PY

run_case() { # key peer round case port pids
  local key=$1 peer=$2 round=$3 case=$4 port=$5 pids=$6
  local url="https://127.0.0.1:$port/" out t0 t1 o0 o1 w0 w1 tool opens=- extra=""
  case $case in
    h2)
      tool=h2load
      taskset -c 0 h2load -t1 -c16 -m4 -D1 "$url" > /dev/null 2>&1 || true
      t0=$(cpu_ticks "$pids")
      out=$(taskset -c 0 timeout $((SECS + 30)) h2load -t1 -c16 -m4 -D"$SECS" "$url" 2>&1 || true)
      t1=$(cpu_ticks "$pids") ;;
    h1)
      tool=wrk
      taskset -c 0 wrk -t1 -c64 -d1s "$url" > /dev/null 2>&1 || true
      t0=$(cpu_ticks "$pids"); w0=$(now)
      out=$(taskset -c 0 timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" --latency "$url" 2>&1 || true)
      t1=$(cpu_ticks "$pids"); w1=$(now) ;;
    full)
      tool=s_time
      taskset -c 0 openssl s_time -connect "127.0.0.1:$port" -new -time 1 > /dev/null 2>&1 || true
      local spids=() i
      t0=$(cpu_ticks "$pids"); o0=$(passive_opens); w0=$(now)
      for i in $(seq "$FULL_CLIENTS"); do
        taskset -c 0 timeout $((SECS + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" \
          > "$dir/s_time.$i" 2>&1 & spids+=($!)
      done
      wait "${spids[@]}" || true
      t1=$(cpu_ticks "$pids"); o1=$(passive_opens); w1=$(now)
      out=$(cat "$dir"/s_time.*); rm -f "$dir"/s_time.*
      opens=$((o1 - o0))
      if [ "$round" = 1 ]; then # what was negotiated, once per peer and key
        extra=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief 2>&1 |
          awk -F': ' '/^Protocol version|^Ciphersuite|^Signature type|^Server Temp Key/{printf "%s/", $2}' | tr ' ' '_')
      fi ;;
    resume)
      tool=h2load
      # The warm-up sizes the measured run: about SECS seconds at the warm-up's rate.
      local warm n
      warm=$(taskset -c 0 timeout 60 h2load --h1 -H 'Connection: close' -c"$RESUME_CONNS" -n 1000 "$url" 2>&1 |
        awk '/^finished in/{print $4}')
      n=$(python3 -c "print(max(1000, int(float('${warm:-100}') * $SECS)))")
      t0=$(cpu_ticks "$pids"); o0=$(passive_opens)
      out=$(taskset -c 0 timeout $((SECS * 5 + 30)) h2load --h1 -H 'Connection: close' -c"$RESUME_CONNS" -n "$n" "$url" 2>&1 || true)
      t1=$(cpu_ticks "$pids"); o1=$(passive_opens)
      opens=$((o1 - o0)) ;;
  esac
  echo "$out" > "$dir/$peer-$key-$case-$round.out"
  python3 "$dir/parse.py" "$tool" "$key" "$peer" "$case" "$round" "$((t1 - t0))" \
    "$(python3 -c "print(${w1:-1} - ${w0:-0})")" "$opens" "$extra" "$out" >> "$dir/rows" ||
    echo "$key $peer $case $round: cannot parse the output (kept in $dir/$peer-$key-$case-$round.out)" >&2
  tail -n1 "$dir/rows" | tr '\t' ' '
}

measure() { # key peer round
  local key=$1 peer=$2 round=$3 port=${PORT[$2-$1]} pid ok=0
  # shellcheck disable=SC2086 # the command is split on purpose
  taskset -c 1 setsid ${CMD[$peer-$key]} > "$dir/$peer-$key.log" 2>&1 & pid=$!
  for _ in $(seq 100); do
    if [ "$(curl -sk -o /dev/null -w '%{size_download}' "https://127.0.0.1:$port/" 2>/dev/null)" = 1024 ]; then ok=1; break; fi
    sleep 0.1
  done
  if [ $ok != 1 ]; then
    echo "$peer/$key did not serve the 1 KiB body; its log:" >&2; cat "$dir/$peer-$key.log" >&2
    kill -9 $pid; exit 1
  fi
  local pids; pids=$(pgrep -s "$(ps -o sid= -p $pid | tr -d ' ')" 2>/dev/null || echo $pid)
  for c in $(peer_cases "$peer"); do run_case "$key" "$peer" "$round" "$c" "$port" "$pids"; done
  echo "# $peer/$key round $round: peak RSS $(peak_rss_kib "$pids") KiB"
  kill -INT $pid 2>/dev/null || true
  for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC') rounds=$ROUNDS secs=$SECS keys=[$KEYS] cases=[$CASES] peers=[$PEERS] loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
: > "$dir/rows"
for r in $(seq "$ROUNDS"); do
  order=$PEERS
  [ $((r % 2)) = 0 ] && order=$(echo "$PEERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for key in $KEYS; do
    for peer in $order; do measure "$key" "$peer" "$r"; done
  done
done
echo "# done $(date -u '+%H:%M UTC') loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$dir/rows" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for key, peer, case, rnd, rate, cpu, err, pct, extra in rows:
    by.setdefault((key, case, peer), []).append((float(rate), float(cpu), int(err), float(pct), extra))
names = {"h2": "h2 over TLS, h2load -c16 -m4", "h1": "HTTPS h1 keep-alive, wrk -c64",
         "full": "full handshake, s_time -new x4", "resume": "resumed reconnect + 1 req, h2load --h1 -c32"}
print()
print("| key | case | proxy | ops/s | proxy CPU µs/op | ops/s per core (1e6/µs) | proxy CPU % | errors | ops/s vs base | CPU/op vs base | CPU µs/op per round |")
print("|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
for key in dict.fromkeys(r[0] for r in rows):
    for case in dict.fromkeys(r[2] for r in rows):
        base_name = "nginx-tickets" if case == "resume" else "nginx"
        base = by.get((key, case, base_name))
        for peer in dict.fromkeys(r[1] for r in rows):
            s = by.get((key, case, peer))
            if not s:
                continue
            rate = st.median(x[0] for x in s); cpu = st.median(x[1] for x in s)
            pct = st.median(x[3] for x in s); err = sum(x[2] for x in s)
            if base:
                rr = "%.2f" % (rate / st.median(x[0] for x in base))
                cr = "%.2f" % (cpu / st.median(x[1] for x in base))
            else:
                rr = cr = "-"
            per = ", ".join("%.1f" % x[1] for x in s)
            print(f"| {key} | {names.get(case, case)} | {peer} | {rate:.0f} | {cpu:.1f} | {1e6 / cpu:.0f} | {pct:.0f} | {err} | {rr} | {cr} | {per} |")
print("\nbase: nginx-tickets for `resume`, nginx otherwise. Notes per sample (first round):")
for key, peer, case, rnd, rate, cpu, err, pct, extra in rows:
    if rnd == "1" and extra:
        print(f"  {key} {peer} {case}: {extra}")
PY
