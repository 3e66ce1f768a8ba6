#!/usr/bin/env bash
# A peer announced the way stock js-libp2p announces itself on mDNS (its
# `dnsaddr=` TXT records in the *answers* section, which libp2p-mdns 0.49 does
# not read) is discovered and greeted by a p2p-node within 5 s.
#
#   sudo scripts/mdns-js-netns.sh
#
# Two namespaces on a bridge that lives in a namespace too (no host interface
# is touched): node A (mDNS on) and node B (mDNS off, so A can only learn of B
# from the announcement), and in B's namespace scripts/lib/js-mdns-announce.py
# announcing B the js way once a second. Needs root, iproute2 and python3.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${P2P_NODE_BIN:-$ROOT/target/release/p2p-node}
PREFIX=${P2P_NETNS_PREFIX:-p2pjs}
SUBNET=10.78.0
PORT=4001
FOUND_SECS=${FOUND_SECS:-5}

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

[[ $(id -u) == 0 ]] || die "needs root to create network namespaces (try: sudo $0)"
command -v ip >/dev/null || die "needs iproute2's 'ip'"
command -v python3 >/dev/null || die "needs python3"

netns_begin p2pjs

if [[ -z ${P2P_NODE_BIN:-} ]]; then
    say "building $BIN"
    (cd "$ROOT" && cargo build --release -p p2p-node) >&2 || die "cannot build p2p-node"
fi

node_ns() { echo "$PREFIX-node$1"; }
make_lan "$PREFIX-br" "$SUBNET" 2 node_ns

B_ID=$("$BIN" id --key-file "$WORK/b.key") || die "cannot create B's key"
ip netns exec "$(node_ns 2)" "$BIN" run --no-mdns --key-file "$WORK/b.key" --interval 1s --message b \
    --listen "/ip4/${IP[2]}/udp/$PORT/quic-v1" --listen "/ip4/${IP[2]}/tcp/$PORT" \
    >"$WORK/b.out" 2>"$WORK/b.err" </dev/null &
PID[2]=$!
ip netns exec "$(node_ns 1)" "$BIN" run --key-file "$WORK/a.key" --interval 1s --message a \
    --listen "/ip4/${IP[1]}/udp/$PORT/quic-v1" --listen "/ip4/${IP[1]}/tcp/$PORT" \
    >"$WORK/a.out" 2>"$WORK/a.err" </dev/null &
PID[1]=$!
has() { grep -q -- "$2" "$WORK/$1.out"; }
within 10 has a "^LISTEN " && within 10 has b "^LISTEN " || die "the nodes did not start"

start=$(now_ms)
ip netns exec "$(node_ns 2)" python3 "$ROOT/scripts/lib/js-mdns-announce.py" "$B_ID" \
    "/ip4/${IP[2]}/udp/$PORT/quic-v1" "/ip4/${IP[2]}/tcp/$PORT" --every 1 --count 30 \
    >"$WORK/announcer.out" 2>&1 </dev/null &
PID[3]=$!

if within "$FOUND_SECS" has a "^DISCOVERED $B_ID "; then
    pass "A discovered B from a js-style announcement in $(($(now_ms) - start)) ms: $(grep -m1 "^DISCOVERED $B_ID " "$WORK/a.out")"
else
    fail "A did not discover B within ${FOUND_SECS}s of the js-style announcement"
fi
if within "$FOUND_SECS" has a "^GREETED $B_ID "; then
    pass "A greeted B $(($(now_ms) - start)) ms after the announcement started"
else
    fail "A did not greet B within ${FOUND_SECS}s"
fi
dials=$(grep -c "^CONNECTED $B_ID " "$WORK/a.out")
if ((dials == 1)); then
    pass "A connected to B once"
else
    fail "A connected to B $dials times"
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
