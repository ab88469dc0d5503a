#!/usr/bin/env bash
# Measures `scaleout balance` against HAProxy in the same run: three local
# app servers, wrk with 64 keep-alive connections and small responses, each
# proxy in turn with the same policy. Prints throughput, p99 latency and the
# proxy's CPU time per request, and scaleout's ratios to HAProxy.
#
#   scripts/bench-balancer.sh            # 10s per run, round robin
#   DURATION=30s POLICY=p2c scripts/bench-balancer.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
POLICY=${POLICY:-round-robin}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/scaleout" ./cmd/scaleout
go build -o "$tmp/target" ./loadgen/internal/benchtarget

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

backends=()
for i in 1 2 3; do
	"$tmp/target" >"$tmp/target$i.addr" &
	pids+=($!)
	for _ in $(seq 50); do [ -s "$tmp/target$i.addr" ] && break; sleep 0.1; done
	backends+=("$(head -1 "$tmp/target$i.addr")")
done

# cpu_ticks PID: user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# measure NAME PID URL: runs wrk and prints one result line.
measure() {
	local name=$1 pid=$2 url=$3
	wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null # warm up
	local before after out rps p99 reqs
	before=$(cpu_ticks "$pid")
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")
	after=$(cpu_ticks "$pid")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	local us
	us=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
	printf '%-10s %10s req/s   p99 %8s   %6s us CPU/request\n' "$name" "$rps" "$p99" "$us"
	eval "${name}_rps=$rps; ${name}_p99=$p99; ${name}_cpu=$us"
}

to_ms() { # wrk latency like 1.23ms, 850.00us or 1.02s -> milliseconds
	awk -v v="$1" 'BEGIN { if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else {sub(/s$/,"",v); print v*1000} }'
}

# HAProxy, configured fairly: HTTP mode, keep-alive both sides, its threads
# on both cores, no logging.
hport=$(free_port)
hpolicy=roundrobin
case $POLICY in
least-connections) hpolicy=leastconn ;;
random | p2c) hpolicy="random(2)" ;;
esac
{
	printf 'global\n  maxconn 4096\n  nbthread 2\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n'
	printf 'frontend fe\n  bind 127.0.0.1:%s\n  default_backend be\nbackend be\n  balance %s\n' "$hport" "$hpolicy"
	i=0
	for b in "${backends[@]}"; do i=$((i + 1)); printf '  server s%d %s\n' "$i" "$b"; done
} >"$tmp/haproxy.cfg"
haproxy -db -f "$tmp/haproxy.cfg" &
hpid=$!
pids+=($hpid)

sport=$(free_port)
aport=$(free_port)
args=(balance --listen "127.0.0.1:$sport" --admin "127.0.0.1:$aport" --policy "$POLICY" --log-level warn)
for b in "${backends[@]}"; do args+=(--backend "http://$b"); done
"$tmp/scaleout" "${args[@]}" &
spid=$!
pids+=($spid)
sleep 1

echo "3 app servers, wrk -t$THREADS -c$CONNS -d$DURATION, policy $POLICY, $(nproc) cores"
measure haproxy "$hpid" "http://127.0.0.1:$hport/"
measure scaleout "$spid" "http://127.0.0.1:$sport/"

awk -v s="$scaleout_rps" -v h="$haproxy_rps" -v sp="$(to_ms "$scaleout_p99")" -v hp="$(to_ms "$haproxy_p99")" \
	-v sc="$scaleout_cpu" -v hc="$haproxy_cpu" 'BEGIN {
	printf "ratio scaleout/haproxy: throughput %.2fx, p99 %.2fx, CPU per request %.2fx\n", s / h, sp / hp, sc / hc
}'
