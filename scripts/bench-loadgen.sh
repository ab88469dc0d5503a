#!/usr/bin/env bash
# Checks that scaleout's load generator is not the bottleneck, against wrk
# (Debian package: wrk) on the same small target in the same run:
#   1. closed loop: `scaleout bench --connections N` throughput / wrk's, want >= 0.90;
#   2. open loop at 80% of wrk's throughput, same connections: achieved / offered, want within 1%.
# Rounds alternate which generator goes first, so neither always meets a
# warmer or a quieter machine. Everything runs on loopback.
#
# Environment: CONNECTIONS (50), DURATION seconds per run (10), ROUNDS (2),
# THREADS for wrk (2, one per core of the development machine),
# STRICT=1 to exit 1 when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}

if ! command -v wrk >/dev/null 2>&1; then
	echo "bench-loadgen: wrk not found: install the Debian package wrk (apt-get install wrk)" >&2
	exit 1
fi

tmp=$(mktemp -d)
target_pid=
cleanup() {
	if [ -n "$target_pid" ]; then kill "$target_pid" 2>/dev/null || true; wait "$target_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building scaleout and the bench target..."
go build -o "$tmp/scaleout" ./cmd/scaleout
go build -o "$tmp/benchtarget" ./loadgen/internal/benchtarget

"$tmp/benchtarget" -addr 127.0.0.1:0 >"$tmp/addr" &
target_pid=$!
for _ in $(seq 100); do
	[ -s "$tmp/addr" ] && break
	sleep 0.1
done
[ -s "$tmp/addr" ] || { echo "bench-loadgen: the bench target did not start" >&2; exit 1; }
url="http://$(head -n1 "$tmp/addr")/"
echo "target: $url (net/http, fixed 38-byte body); $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# json_field NAME FILE prints the first number of "NAME": in a JSON file.
json_field() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p" "$2" | head -n1; }

# Each run prints "req/s cpu-µs-per-request": the generator's own CPU time
# (user + system, from bash's time) per request is a second view of its
# cost that the other load on a shared machine disturbs less than req/s.
TIMEFORMAT='%U %S'
run_wrk() {
	{ time wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$url" >"$tmp/wrk.out"; } 2>"$tmp/time"
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
	awk -v rps="$rps" -v d="$DURATION" '{printf "%s %.2f\n", rps, ($1 + $2) * 1e6 / (rps * d)}' "$tmp/time"
}
run_bench() {
	{ time "$tmp/scaleout" bench "$url" --connections "$CONNECTIONS" --duration "${DURATION}s" --json --progress 0 >"$tmp/bench.json"; } 2>"$tmp/time"
	rps=$(json_field achieved_rps "$tmp/bench.json")
	reqs=$(json_field requests "$tmp/bench.json")
	awk -v rps="$rps" -v n="$reqs" '{printf "%s %.2f\n", rps, ($1 + $2) * 1e6 / n}' "$tmp/time"
}

wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "$url" >/dev/null # warm up the target

wrk_sum=0
bench_sum=0
echo
echo "closed loop, $CONNECTIONS connections, ${DURATION}s per run:"
for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) -eq 1 ]; then
		read -r w wcpu < <(run_wrk); read -r b bcpu < <(run_bench)
	else
		read -r b bcpu < <(run_bench); read -r w wcpu < <(run_wrk)
	fi
	printf '  round %d: wrk %9.1f req/s (%5.2f CPU-µs/req)   scaleout bench %9.1f req/s (%5.2f CPU-µs/req)   ratio %.3f\n' \
		"$round" "$w" "$wcpu" "$b" "$bcpu" "$(awk -v b="$b" -v w="$w" 'BEGIN {print b / w}')"
	wrk_sum=$(awk -v s="$wrk_sum" -v x="$w" 'BEGIN {print s + x}')
	bench_sum=$(awk -v s="$bench_sum" -v x="$b" 'BEGIN {print s + x}')
done
closed_ratio=$(awk -v b="$bench_sum" -v w="$wrk_sum" 'BEGIN {printf "%.3f", b / w}')
wrk_mean=$(awk -v s="$wrk_sum" -v n="$ROUNDS" 'BEGIN {print s / n}')

rate=$(awk -v w="$wrk_mean" 'BEGIN {printf "%.0f", 0.8 * w}')
echo
echo "open loop at 80% of wrk's mean throughput: $rate req/s for ${DURATION}s, at most $CONNECTIONS connections:"
# The open loop gets the same number of connections as the closed loops.
"$tmp/scaleout" bench "$url" --rate "$rate" --connections "$CONNECTIONS" --duration "${DURATION}s" --json --progress 0 >"$tmp/open.json"
achieved=$(json_field achieved_rps "$tmp/open.json")
late=$(json_field started_late "$tmp/open.json")
lag=$(json_field max_lag_ms "$tmp/open.json")
requests=$(json_field requests "$tmp/open.json")
errors=$(json_field errors "$tmp/open.json")
p99=$(json_field p99 "$tmp/open.json")
pacing=$(awk -v a="$achieved" -v r="$rate" 'BEGIN {printf "%.4f", a / r}')
printf '  offered %s req/s, achieved %.1f req/s, %s requests, %s errors, p99 %sms, %s started >5ms late, max lag %sms\n' \
	"$rate" "$achieved" "$requests" "$errors" "$p99" "$late" "$lag"

echo
closed_ok=$(awk -v r="$closed_ratio" 'BEGIN {print (r >= 0.9) ? "ok" : "MISSED"}')
open_ok=$(awk -v p="$pacing" 'BEGIN {print (p >= 0.99 && p <= 1.01) ? "ok" : "MISSED"}')
echo "closed-loop throughput, scaleout bench / wrk: $closed_ratio  (want >= 0.90: $closed_ok)"
echo "open-loop pacing, achieved / offered:          $pacing  (want within 1%: $open_ok)"
if [ "${STRICT:-0}" = 1 ] && { [ "$closed_ok" != ok ] || [ "$open_ok" != ok ]; }; then
	exit 1
fi
