#!/usr/bin/env bash
# A real, stock js-libp2p node (scripts/js/mdns-peer.mjs: libp2p with TCP,
# Noise, Yamux, identify and @libp2p/mdns, default configuration) and a
# p2p-node find each other by mDNS and connect, and the p2p-node does not keep
# redialing a peer that does not speak greet.
#
#   sudo scripts/js-libp2p-netns.sh
#
# Two namespaces on a bridge that lives in a namespace too (no host interface
# is touched, mDNS included): p2p-node in one, the js node in the other, and
# beside p2p-node a receive-only listener (scripts/lib/mdns-sections.py) that
# records in which section of its mDNS responses the js node puts its TXT
# records. Needs root, iproute2, python3, node >= 20 and npm (`npm ci` in
# scripts/js fetches the pinned packages when node_modules is missing).
#
# P2P_NODE_BIN=path uses that binary instead of building one; OBSERVE_SECS
# (default 20) is how long the connection count is watched; MDNS_INTERVAL_MS
# (default 2000) is the js node's query interval. JS_PING=1 gives the js node
# @libp2p/ping as well. Either way the connection must stay up: the js
# connection monitor pings every 10 s, and rust-libp2p's ping handler
# (libp2p-ping 0.48) stops serving inbound pings on a connection once its own
# outbound ping was refused, which p2p-node works around (swarm/ping.rs);
# before that, the js node aborted
# the connection ~15 s after it opened (and p2p-node rightly does not redial).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
JS=$ROOT/scripts/js
BIN=${P2P_NODE_BIN:-$ROOT/target/release/p2p-node}
PREFIX=${P2P_NETNS_PREFIX:-p2pjsr} # not p2pjs: scripts/mdns-js-netns.sh uses that, and make_ns removes namesakes
SUBNET=10.79.0
PORT=4001
FOUND_SECS=${FOUND_SECS:-15}
OBSERVE_SECS=${OBSERVE_SECS:-20}
MDNS_INTERVAL_MS=${MDNS_INTERVAL_MS:-2000}
JS_PING=${JS_PING:-0}

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

[[ $(id -u) == 0 ]] || die "needs root to create network namespaces (try: sudo $0)"
for tool in ip python3 node npm; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
(($(node -p 'process.versions.node.split(".")[0]') >= 20)) || die "needs node >= 20, not $(node --version)"

netns_begin p2pjsr

if [[ ! -d $JS/node_modules ]]; then
    say "installing the pinned js-libp2p packages (npm ci in $JS)"
    (cd "$JS" && npm ci --no-audit --no-fund) >&2 || die "npm ci failed in $JS"
fi
if [[ -z ${P2P_NODE_BIN:-} ]]; then
    say "building $BIN"
    (cd "$ROOT" && cargo build --release -p p2p-node) >&2 || die "cannot build p2p-node"
fi
say "p2p-node $("$BIN" --version | awk '{print $NF}'), node $(node --version), js packages:" \
    "$(cd "$JS" && npm ls --depth=0 2>/dev/null | sed -n 's/^[├└]── //p' | tr '\n' ' ')"

node_ns() { echo "$PREFIX-node$1"; }
make_lan "$PREFIX-br" "$SUBNET" 2 node_ns

# The listener first, so it hears the js node's first responses.
ip netns exec "$(node_ns 1)" python3 "$ROOT/scripts/lib/mdns-sections.py" "${IP[2]}" \
    $((FOUND_SECS + OBSERVE_SECS + 10)) >"$WORK/sections.out" 2>&1 </dev/null &
PID[3]=$!
has() { grep -qs -- "$2" "$WORK/$1.out"; }
within 5 has sections "^MDNS_LISTENING" || say "the mDNS listener did not start: $(<"$WORK/sections.out")"

A_ID=$("$BIN" id --key-file "$WORK/a.key") || die "cannot create our node's key"
start=$(now_ms)
ip netns exec "$(node_ns 1)" "$BIN" run --key-file "$WORK/a.key" --interval 1s --message a \
    --listen "/ip4/${IP[1]}/tcp/$PORT" --listen "/ip4/${IP[1]}/udp/$PORT/quic-v1" \
    >"$WORK/a.out" 2>"$WORK/a.err" </dev/null &
PID[1]=$!
ip netns exec "$(node_ns 2)" node "$JS/mdns-peer.mjs" "/ip4/${IP[2]}/tcp/0" "$MDNS_INTERVAL_MS" "$( ((JS_PING)) && echo ping)" \
    >"$WORK/js.out" 2>"$WORK/js.err" </dev/null &
PID[2]=$!
within 10 has a "^LISTEN " || die "p2p-node did not start: $(<"$WORK/a.err")"
within 20 has js "^JS_LISTEN " || die "the js node did not start: $(<"$WORK/js.err")"
JS_ID=$(awk '$1 == "JS_PEER" { print $2; exit }' "$WORK/js.out")
say "p2p-node $A_ID at ${IP[1]}; js node $JS_ID at $(awk '$1 == "JS_LISTEN" { print $2 }' "$WORK/js.out")"

if within "$FOUND_SECS" has a "^DISCOVERED $JS_ID "; then
    pass "p2p-node discovered the js node $(($(now_ms) - start)) ms after start: $(grep -m1 "^DISCOVERED $JS_ID " "$WORK/a.out")"
else
    fail "p2p-node did not discover the js node within ${FOUND_SECS}s"
fi
connected() { has a "^CONNECTED $JS_ID " || has js "^JS_CONNECTED $A_ID"; }
if within "$FOUND_SECS" connected; then
    pass "connected $(($(now_ms) - start)) ms after start: $(grep -m1 "^CONNECTED $JS_ID " "$WORK/a.out" || echo "(js side only)") / $(grep -m1 "^JS_CONNECTED" "$WORK/js.out")"
else
    fail "p2p-node and the js node did not connect within ${FOUND_SECS}s"
fi
if within "$FOUND_SECS" has js "^JS_DISCOVERED $A_ID "; then
    pass "the js node discovered p2p-node: $(grep -m1 "^JS_DISCOVERED $A_ID " "$WORK/js.out")"
else
    fail "the js node did not discover p2p-node within ${FOUND_SECS}s"
fi
within 5 has js "^JS_IDENTIFIED $A_ID " && say "js node identified us: $(grep -m1 "^JS_IDENTIFIED $A_ID " "$WORK/js.out" | cut -c1-300)"

# No redial loop: the js node does not speak greet, so once connected the
# connection count must stay where it is.
count() { grep -c "^$1 $JS_ID" "$WORK/a.out"; }
sleep $((OBSERVE_SECS / 2))
half=$(count CONNECTED)
sleep $((OBSERVE_SECS - OBSERVE_SECS / 2))
conns=$(count CONNECTED) discs=$(count DISCONNECTED)
say "over ${OBSERVE_SECS}s: CONNECTED $conns, DISCONNECTED $discs, GREETED $(count GREETED)," \
    "GREET_FAILED $(count GREET_FAILED) lines for the js node; js side: JS_CONNECTED $(grep -c '^JS_CONNECTED' "$WORK/js.out")," \
    "JS_DISCONNECTED $(grep -c '^JS_DISCONNECTED' "$WORK/js.out")"
if ((conns >= 1 && conns <= 2 && conns == half)); then
    pass "no redial loop: p2p-node connected to the js node $conns time(s), none in the last $((OBSERVE_SECS - OBSERVE_SECS / 2))s"
else
    fail "p2p-node connected to the js node $conns times ($half after $((OBSERVE_SECS / 2))s), $discs disconnects"
fi
# Whether or not the js node serves ping, p2p-node answers its pings (swarm/ping.rs).
if ((discs == 0)); then
    pass "the connection stayed up for ${OBSERVE_SECS}s (js pings it every 10 s and drops it if unanswered)"
else
    fail "the connection closed $discs time(s) within ${OBSERVE_SECS}s"
fi
if kill -TERM "${PID[2]}" 2>/dev/null && wait "${PID[2]}"; then
    pass "the js node ran throughout and stopped cleanly on SIGTERM"
else
    fail "the js node died or did not stop cleanly: $(grep -m3 -i error "$WORK/js.err")"
fi
PID[2]=
if grep -qi panic "$WORK/a.err"; then
    fail "p2p-node panicked: $(grep -i -m1 panic "$WORK/a.err")"
else
    pass "no panic in p2p-node's stderr"
fi

# Informational: where the js node's TXT records are (what issue 14 is about).
responses=$(grep -c '^MDNS_RESPONSE' "$WORK/sections.out")
say "js node's mDNS responses heard: $responses; layouts:"
grep '^MDNS_RESPONSE' "$WORK/sections.out" | sort | uniq -c | sed 's/^/#   /' >&2

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
