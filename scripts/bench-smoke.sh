#!/usr/bin/env bash
# CI smoke test of `p2p-node bench` and of `p2p-fault load` (the fault
# scripts' traffic client): a few seconds each against a p2p-node on 127.0.0.1
# (mDNS off), over QUIC and TCP. Asserts only that requests succeed, never a
# speed. The node is stopped by PID on exit.
#
#   scripts/bench-smoke.sh     # P2P_NODE_BIN=... / P2P_FAULT_BIN=... to use other binaries than target/debug/
set -euo pipefail
printf '\n==> %s\n' "scripts/bench-smoke.sh (p2p-node bench and p2p-fault load against a node on 127.0.0.1, mDNS off)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${P2P_NODE_BIN:-}
FAULT=${P2P_FAULT_BIN:-}
if [[ -z $BIN ]]; then
    cargo build -q -p p2p-node
    BIN=$ROOT/target/debug/p2p-node
fi
if [[ -z $FAULT ]]; then
    cargo build -q -p p2p-fault
    FAULT=$ROOT/target/debug/p2p-fault
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2pbenchsmoke.XXXXXX")
NODE_PID=
cleanup() {
    local i
    if [[ -n $NODE_PID ]] && kill -TERM "$NODE_PID" 2>/dev/null; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$NODE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    printf 'bench-smoke: FAIL: %s\n' "$*" >&2
    printf -- '--- node stderr:\n%s\n' "$(cat "$WORK/node.err" 2>/dev/null)" >&2
    exit 1
}

"$BIN" run --no-mdns --listen /ip4/127.0.0.1/udp/0/quic-v1 --listen /ip4/127.0.0.1/tcp/0 \
    --key-file "$WORK/node.key" --rate-per-sec 0 --max-in-flight-per-peer 0 --max-in-flight-total 0 \
    >"$WORK/node.out" 2>"$WORK/node.err" &
NODE_PID=$!

listen_addr() { # transport: the node's LISTEN address on it, once printed
    local line i
    for ((i = 0; i < 300; i++)); do
        if line=$(grep -m1 "^LISTEN .*/$1/" "$WORK/node.out" 2>/dev/null); then
            echo "${line#LISTEN }"
            return 0
        fi
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail "the node printed no LISTEN line for $1"
}

for transport in quic-v1 tcp; do
    addr=$(listen_addr "$transport")
    if ! out=$("$BIN" bench "$addr" --concurrency 8 --connections 2 --duration 2s --warmup 0s \
        --json --no-progress 2>"$WORK/bench.err"); then
        fail "bench over $transport exited non-zero: $(cat "$WORK/bench.err")"
    fi
    ok=$(grep -o '"ok":[0-9]*' <<<"$out" | cut -d: -f2)
    [[ ${ok:-0} -gt 0 ]] || fail "bench over $transport: no request succeeded: $out"
    echo "bench over $transport: $ok requests answered"

    # Paced, as the fault scripts run it: a flat JSON line and a latency file.
    if ! out=$("$FAULT" load "$addr" --rate 100 --concurrency 4 --duration 2s --warmup 0s \
        --latencies "$WORK/load.lat" --json 2>"$WORK/load.err"); then
        fail "p2p-fault load over $transport exited non-zero: $(cat "$WORK/load.err")"
    fi
    json=$(tail -n 1 <<<"$out")
    ok=$(grep -o '"ok":[0-9]*' <<<"$json" | cut -d: -f2)
    [[ ${ok:-0} -gt 0 ]] || fail "p2p-fault load over $transport: no request succeeded: $out"
    grep -q '"failed":0,' <<<"$json" || fail "p2p-fault load over $transport: failed requests: $json"
    lines=$(grep -c ' ok$' "$WORK/load.lat" || true)
    ((lines == ok)) || fail "p2p-fault load over $transport: $lines latency lines for $ok answered requests"
    echo "p2p-fault load over $transport: $ok requests answered"
done
echo "bench-smoke: ok"
