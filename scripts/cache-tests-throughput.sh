#!/usr/bin/env bash
# Cache-hit throughput of httpcache.Shared against HAProxy's cache (and
# nginx's proxy_cache when nginx is installed), in the same run, on
# loopback: one origin (python3's http.server with one 2 KiB file), each
# cache in front of it, wrk with 64 connections against each in turn.
# Prints requests/s and the ratio of ours to each peer.
#
#   scripts/cache-tests-throughput.sh
#   DURATION=10s ROUNDS=3 scripts/cache-tests-throughput.sh
#   SCALEOUT_CACHE_URL=http://127.0.0.1:8080/page.txt scripts/cache-tests-throughput.sh
#       (measure a running `scaleout balance --cache` in front of ORIGIN_PORT instead)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-8s}
rounds=${ROUNDS:-2}
need() { command -v "$1" >/dev/null || { echo "cache-throughput: $1 is missing (Debian package $2)" >&2; exit 1; }; }
need wrk wrk
need haproxy haproxy
need python3 python3

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() {
	for _ in $(seq 1 100); do
		if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "cache-throughput: nothing listening on 127.0.0.1:$1" >&2
	return 1
}

mkdir -p "$work/www"
head -c 2048 /dev/zero | tr '\0' 'x' >"$work/www/page.txt"
oport=${ORIGIN_PORT:-$(freeport)}
python3 -m http.server "$oport" --bind 127.0.0.1 --directory "$work/www" >"$work/origin.log" 2>&1 &
pids+=($!)
waitport "$oport"

declare -A url
if [ -n "${SCALEOUT_CACHE_URL:-}" ]; then
	url[scaleout]=$SCALEOUT_CACHE_URL
else
	go build -o "$work/cachetestproxy" ./httpcache/internal/cachetestproxy
	sport=$(freeport)
	"$work/cachetestproxy" -listen "127.0.0.1:$sport" -origin "http://127.0.0.1:$oport" >"$work/proxy.log" 2>&1 &
	pids+=($!)
	waitport "$sport"
	url[scaleout]=http://127.0.0.1:$sport/page.txt
fi

hport=$(freeport)
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
cache c
  total-max-size 64
  max-age 3600
frontend f
  bind 127.0.0.1:$hport
  http-request cache-use c
  http-response cache-store c
  default_backend b
backend b
  server s1 127.0.0.1:$oport
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
waitport "$hport"
url[haproxy]=http://127.0.0.1:$hport/page.txt

if command -v nginx >/dev/null; then
	nport=$(freeport)
	mkdir -p "$work/nginx"
	cat >"$work/nginx.conf" <<CFG
daemon off;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  proxy_cache_path $work/nginx/cache keys_zone=c:10m;
  server {
    listen 127.0.0.1:$nport;
    location / { proxy_pass http://127.0.0.1:$oport; proxy_cache c; proxy_cache_valid 200 1h; }
  }
}
CFG
	nginx -c "$work/nginx.conf" >"$work/nginx.log" 2>&1 &
	pids+=($!)
	waitport "$nport"
	url[nginx]=http://127.0.0.1:$nport/page.txt
fi

# Warm every cache, then measure in turns so all see the same machine load.
for name in "${!url[@]}"; do curl -fsS -o /dev/null "${url[$name]}"; curl -fsS -o /dev/null "${url[$name]}"; done
declare -A total
for round in $(seq 1 "$rounds"); do
	for name in "${!url[@]}"; do
		rps=$(timeout 120 wrk -t2 -c64 -d"$duration" "${url[$name]}" | awk '/Requests\/sec/ {print $2}')
		echo "round $round $name: $rps req/s"
		total[$name]=$(python3 -c "print(${total[$name]:-0} + $rps)")
	done
done
ours=${total[scaleout]}
for name in "${!url[@]}"; do
	avg=$(python3 -c "print(round(${total[$name]} / $rounds))")
	ratio=$(python3 -c "print(round($ours / ${total[$name]}, 2))")
	echo "$name: $avg req/s average; scaleout/$name = $ratio"
done
