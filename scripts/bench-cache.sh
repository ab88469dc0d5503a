#!/usr/bin/env bash
# Cache-hit throughput of `scaleout balance --cache` against HAProxy 2.6's
# cache in the same run: one origin on loopback (python3, a 2 KiB page with
# Cache-Control: public, max-age=3600), each proxy in front of it with its
# cache on, and wrk with 64 keep-alive connections against each in turn,
# after a warm-up that stores the page. Prints req/s, p99, the proxy's CPU
# time per hit (from /proc/PID/stat) and scaleout's ratios to HAProxy; also
# nginx's proxy_cache when nginx is installed.
#
#   scripts/bench-cache.sh                  # 10s per run, 2 rounds
#   DURATION=20s ROUNDS=3 scripts/bench-cache.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}

for tool in wrk:wrk haproxy:haproxy python3:python3 curl:curl; do
	command -v "${tool%%:*}" >/dev/null || { echo "bench-cache: ${tool%%:*} is missing (Debian package ${tool##*:})" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
	for _ in $(seq 1 100); do
		if python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench-cache: nothing listening on 127.0.0.1:$1" >&2
	return 1
}

go build -o "$tmp/scaleout" ./cmd/scaleout

oport=$(free_port)
cat >"$tmp/origin.py" <<'PY'
import http.server, sys
body = b"x" * 2048
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$tmp/origin.py" "$oport" &
pids+=($!)
wait_port "$oport"

declare -A url pid
sport=$(free_port)
aport=$(free_port)
"$tmp/scaleout" balance --listen "127.0.0.1:$sport" --admin "127.0.0.1:$aport" --backend "http://127.0.0.1:$oport" \
	--cache --cache-size 64MB --log-level warn >"$tmp/scaleout.log" 2>&1 &
pids+=($!)
pid[scaleout]=$!
wait_port "$sport"
url[scaleout]=http://127.0.0.1:$sport/page

hport=$(free_port)
cat >"$tmp/haproxy.cfg" <<CFG
global
  maxconn 4096
  nbthread 2
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
cache c
  total-max-size 64
  max-object-size 1048576
  max-age 3600
frontend f
  bind 127.0.0.1:$hport
  http-request cache-use c
  http-response cache-store c
  default_backend b
backend b
  server s1 127.0.0.1:$oport
CFG
haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 &
pids+=($!)
pid[haproxy]=$!
wait_port "$hport"
url[haproxy]=http://127.0.0.1:$hport/page

if command -v nginx >/dev/null; then
	nport=$(free_port)
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx.conf" <<CFG
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  proxy_cache_path $tmp/nginx/cache keys_zone=c:10m;
  server {
    listen 127.0.0.1:$nport;
    location / { proxy_pass http://127.0.0.1:$oport; proxy_http_version 1.1; proxy_cache c; }
  }
}
CFG
	nginx -c "$tmp/nginx.conf" -e "$tmp/nginx/error.log" >"$tmp/nginx.log" 2>&1 &
	pids+=($!)
	pid[nginx]=$!
	wait_port "$nport"
	url[nginx]=http://127.0.0.1:$nport/page
fi

# Warm every cache and check that the second request is a hit.
for name in "${!url[@]}"; do
	curl -fsS -o /dev/null "${url[$name]}"
	curl -fsS -o /dev/null "${url[$name]}"
done
if ! curl -fsS -D - -o /dev/null "${url[scaleout]}" | grep -qi '^cache-status:.*hit'; then
	echo "bench-cache: scaleout does not answer the page from its cache" >&2
	exit 1
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
declare -A rps_sum cpu_sum
for round in $(seq 1 "$ROUNDS"); do
	for name in $(printf '%s\n' "${!url[@]}" | sort); do
		before=$(cpu_ticks "${pid[$name]}")
		out=$(timeout 300 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${url[$name]}")
		after=$(cpu_ticks "${pid[$name]}")
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
		reqs=$(awk '/requests in/ {print $1}' <<<"$out")
		us=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
		printf 'round %d %-9s %10s req/s   p99 %8s   %6s us CPU/hit\n' "$round" "$name" "$rps" "$p99" "$us"
		rps_sum[$name]=$(awk -v a="${rps_sum[$name]:-0}" -v b="$rps" 'BEGIN {print a + b}')
		cpu_sum[$name]=$(awk -v a="${cpu_sum[$name]:-0}" -v b="$us" 'BEGIN {print a + b}')
	done
done
echo "page 2 KiB, wrk -t$THREADS -c$CONNS -d$DURATION x $ROUNDS rounds, $(nproc) cores"
for name in $(printf '%s\n' "${!url[@]}" | sort); do
	awk -v n="$name" -v r="${rps_sum[$name]}" -v c="${cpu_sum[$name]}" -v k="$ROUNDS" \
		'BEGIN {printf "%-9s %10.0f req/s average   %6.2f us CPU/hit\n", n, r / k, c / k}'
done
for name in $(printf '%s\n' "${!url[@]}" | sort); do
	[ "$name" = scaleout ] && continue
	awk -v n="$name" -v s="${rps_sum[scaleout]}" -v o="${rps_sum[$name]}" -v sc="${cpu_sum[scaleout]}" -v oc="${cpu_sum[$name]}" \
		'BEGIN {printf "ratio scaleout/%s: throughput %.2fx, CPU per hit %.2fx\n", n, s / o, sc / oc}'
done
