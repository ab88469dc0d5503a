#!/usr/bin/env bash
# Runs the public HTTP caching test suite (npm: http-cache-tests) against
# httpcache.Shared: the suite's origin server, our cache in front of it, and
# the suite's command-line client, all on loopback. The cache is either
# `scaleout balance --cache` with the origin as its only member (TARGET=
# balancer, the default: what users run) or the Handler form (TARGET=
# handler: the small program in httpcache/internal/cachetestproxy). Prints
# pass/fail counts by kind (required, optimal, check) and the failing
# required tests.
#
#   scripts/cache-tests.sh            # run the whole suite against the balancer
#   TARGET=handler scripts/cache-tests.sh   # against Shared.Handler()
#   MIN_REQUIRED=N scripts/cache-tests.sh   # also fail if fewer than N required tests pass
#   CACHE_TESTS_ID=freshness-max-age scripts/cache-tests.sh   # one test, with its dump
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.4.5
target=${TARGET:-balancer}
case $target in balancer | handler) ;; *) echo "cache-tests: TARGET=$target: want balancer or handler" >&2; exit 2 ;; esac
dir=${CACHE_TESTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/scaleout/http-cache-tests-$version}
suite=$dir/node_modules/http-cache-tests
command -v node >/dev/null || { echo "cache-tests: node is missing (Debian package nodejs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "cache-tests: npm is missing (Debian package npm)" >&2; exit 1; }
if [ ! -f "$suite/cli.mjs" ]; then
	mkdir -p "$dir"
	if ! (cd "$dir" && npm install --no-audit --no-fund --silent "http-cache-tests@$version" >/dev/null); then
		echo "cache-tests: npm install http-cache-tests@$version failed, so the conformance count cannot be checked" >&2
		exit 1
	fi
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

freeport() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
waitport() {
	for _ in $(seq 1 100); do
		if node -e "require('net').connect($1,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"; then return 0; fi
		sleep 0.2
	done
	echo "cache-tests: nothing listening on 127.0.0.1:$1" >&2
	return 1
}

oport=$(freeport)
# An app server behind a balancer keeps idle connections open longer than
# the balancer keeps them pooled (30s); Node's default is 5s, and a PUT that
# meets a connection Node just closed is not safely retryable, so the
# suite's origin gets a longer keep-alive.
cat >"$work/keepalive.cjs" <<'JS'
const http = require('http')
const createServer = http.createServer
http.createServer = function (...args) {
  const s = createServer.apply(this, args)
  s.keepAliveTimeout = 120000
  s.headersTimeout = 121000
  return s
}
JS
(cd "$suite" && npm_config_protocol=http npm_config_port=$oport npm_config_pidfile=$work/server.pid \
	exec node --require "$work/keepalive.cjs" server/server.mjs >"$work/origin.log" 2>&1) &
pids+=($!)
waitport "$oport"

pport=$(freeport)
if [ "$target" = balancer ]; then
	go build -o "$work/scaleout" ./cmd/scaleout
	aport=$(freeport)
	# The suite's origin answers 5xx on purpose (stale-if-error tests):
	# passive ejection of the only member would turn later tests into
	# 503s, which would measure the pool, not the cache.
	printf 'eject_after: -1\n' >"$work/balance.yaml"
	"$work/scaleout" balance --config "$work/balance.yaml" --listen "127.0.0.1:$pport" --admin "127.0.0.1:$aport" \
		--backend "http://127.0.0.1:$oport" --cache --cache-size 64MB --log-level error >"$work/proxy.log" 2>&1 &
else
	go build -o "$work/cachetestproxy" ./httpcache/internal/cachetestproxy
	"$work/cachetestproxy" -listen "127.0.0.1:$pport" -origin "http://127.0.0.1:$oport" >"$work/proxy.log" 2>&1 &
fi
pids+=($!)
waitport "$pport"
echo "cache-tests: http-cache-tests $version against the $target"

if [ -n "${CACHE_TESTS_ID:-}" ]; then
	(cd "$suite" && npm_config_base="http://127.0.0.1:$pport" npm_config_id="$CACHE_TESTS_ID" node --no-warnings cli.mjs)
	exit 0
fi
(cd "$suite" && npm_config_base="http://127.0.0.1:$pport" npm_config_id="" npm_package_config_id="" timeout 600 node --no-warnings cli.mjs) >"$work/results.json"

# The scorer follows the suite's own display rules (lib/display.mjs): a
# test whose dependency did not pass is not counted, nor is a setup failure.
cat >"$work/score.mjs" <<'JS'
import fs from 'fs'
import tests from './tests/index.mjs'
import surrogate from './tests/surrogate-control.mjs'
tests.push(surrogate)
const results = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const byId = {}
for (const suite of tests) for (const test of suite.tests) byId[test.id] = test
function outcome (id) {
  const test = byId[id]
  const r = results[id]
  if (r === undefined) return 'untested'
  for (const dep of test.depends_on || []) {
    if (outcome(dep) !== 'pass') return 'dependency'
  }
  if (Array.isArray(r) && r[0] === 'Setup') return 'setup'
  return r === true ? 'pass' : 'fail'
}
const counts = {}
const failedRequired = []
for (const id of Object.keys(byId)) {
  const test = byId[id]
  if (test.browser_only) continue
  const kind = test.kind || 'required'
  const c = counts[kind] ||= { pass: 0, fail: 0, setup: 0, dependency: 0, untested: 0 }
  const o = outcome(id)
  c[o]++
  if (o === 'fail' || o === 'setup') failedRequired.push(`${kind} ${o} ${id}: ${results[id][1]}`)
}
for (const id of failedRequired) console.log('FAIL ' + id)
for (const [kind, c] of Object.entries(counts)) {
  console.log(`${kind}: ${c.pass} passed, ${c.fail} failed, ${c.setup} setup failures, ${c.dependency} dependency not met, ${c.untested} untested`)
}
let raw = 0
let total = 0
for (const id of Object.keys(byId)) {
  const test = byId[id]
  if (test.browser_only || (test.kind || 'required') !== 'required') continue
  total++
  if (results[id] === true) raw++
}
console.log(`required, every result counted as it came: ${raw} of ${total} passed`)
const req = counts.required
console.log(`required tests: ${req.pass} of ${total} passed (${req.fail} failed)`)
fs.writeFileSync(process.argv[3], String(req.pass))
JS
cp "$work/score.mjs" "$suite/.scaleout-score.mjs"
node --no-warnings "$suite/.scaleout-score.mjs" "$work/results.json" "$work/required"
passed=$(cat "$work/required")
if [ -n "${MIN_REQUIRED:-}" ] && [ "$passed" -lt "$MIN_REQUIRED" ]; then
	echo "cache-tests: $passed required tests passed, fewer than the recorded $MIN_REQUIRED" >&2
	exit 1
fi
