#!/usr/bin/env bash
# libp2p's perf protocol (/perf/1.0.0) between two p2p-nodes in network
# namespaces of this script's own, beside iperf3 on the same link (issue 26):
#
#   <prefix>-a  eth0 198.51.100.1/24 ==== veth ==== eth0 198.51.100.2/24  <prefix>-b
#   (server: p2p-node run --perf, iperf3 -s)        (clients: p2p-node perf, iperf3 -c)
#
# 198.51.100.0/24 is TEST-NET-2; both ends of the veth are created inside our
# namespaces, which have no other link and no route anywhere: nothing leaves
# them. No delay, no loss: a veth pair measures what the stacks cost (CPU),
# not what a network does to them.
#
# Measured, each bounded in time (--duration of the perf client, -t of iperf3):
#   - iperf3 (TCP, one stream): upload (b -> a) and download (-R), 1-s samples;
#   - our perf over QUIC and over TCP (and WebSocket when the node has it; skipped
#     otherwise): upload and download on one stream, 1-s samples;
#   - 100 fresh connections over each (a fresh identity each, one after the
#     other): dial to connected, and a 1-byte round trip on a perf stream
#     (stream negotiation included), p50/p99/max;
# then a table with each throughput as a share of iperf3's.
#
# Modes:
#   sudo scripts/perf-netns.sh           the full run (SECS=5 per direction, 100 connections;
#                                        about 1.5 min with a release binary)
#   sudo scripts/perf-netns.sh --short   CI: 1 s per direction, 10 connections, QUIC and TCP
#                                        (under 30 s); checks that every measurement moved
#                                        bytes and every connection succeeded
#
# Knobs (environment): P2P_NODE_BIN (else `cargo build -p p2p-node`, debug, under
# $CARGO_TARGET_DIR or target/; give a release binary for figures worth keeping:
# `cargo build --release -p p2p-node`); SECS, CONNECTIONS, TRANSPORTS ("quic tcp ws"),
# P2P_NETNS_PREFIX (p2pperf), KEEP_LOGS=1. Needs root, iproute2, python3 and
# iperf3 (Debian's, installed with apt-get when missing). Prints PASS/FAIL lines,
# the table, and `<n> passed, <m> failed`; exits non-zero if a check failed.
# Namespaces and processes are removed on any exit (processes by PID first).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PREFIX=${P2P_NETNS_PREFIX:-p2pperf}

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

MODE=full
for arg in "$@"; do
    case $arg in
        --short) MODE=short ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (expected --short or nothing)" ;;
    esac
done
if [[ $MODE == short ]]; then
    SECS=${SECS:-1}
    CONNECTIONS=${CONNECTIONS:-10}
else
    SECS=${SECS:-5}
    CONNECTIONS=${CONNECTIONS:-100}
fi
TRANSPORTS=${TRANSPORTS:-quic tcp ws}

((EUID == 0)) || die "needs root (network namespaces)"
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
if ! command -v iperf3 >/dev/null; then
    say "installing iperf3 (Debian package)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3; } >/dev/null \
        || die "cannot install iperf3"
fi

BIN=${P2P_NODE_BIN:-}
if [[ -z $BIN ]]; then
    say "cargo build -p p2p-node"
    (cd "$ROOT" && cargo build -q -p p2p-node) || die "cannot build p2p-node"
    BIN=$TARGET_DIR/debug/p2p-node
fi
[[ -x $BIN ]] || die "no binary at $BIN"
say "p2p-node: $BIN (a debug build measures far less than a release one)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/perf-netns.XXXXXX")
PASSED=0
FAILED=0
NAMESPACES=()
declare -A PIDS=()
# A copy: a rebuild while we run does not change the binary under us.
cp "$BIN" "$WORK/p2p-node"
BIN=$WORK/p2p-node
trap 'rc=$?; ((rc != 0)) && KEEP_LOGS=1; netns_cleanup PIDS' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

A=$PREFIX-a
B=$PREFIX-b
IP_A=198.51.100.1
IP_B=198.51.100.2
make_ns "$A"
make_ns "$B"
# Both ends are created inside our namespaces: the host's never sees them.
ip -n "$A" link add eth0 type veth peer name eth0 netns "$B" || die "cannot create the veth pair"
ip -n "$A" addr add "$IP_A/24" dev eth0
ip -n "$B" addr add "$IP_B/24" dev eth0
ip -n "$A" link set eth0 up
ip -n "$B" link set eth0 up
say "namespaces $A ($IP_A) and $B ($IP_B) on a veth pair; mode $MODE, ${SECS}s per direction, $CONNECTIONS connections"

# ---- iperf3, the baseline ---------------------------------------------------
ip netns exec "$A" iperf3 -s -B "$IP_A" -p 5201 >"$WORK/iperf3-server.log" 2>&1 &
PIDS[iperf3]=$!
iperf_listening() { ip netns exec "$A" ss -ltn | grep -q ":5201 "; }
within 5 iperf_listening || die "iperf3 server did not start (see $WORK/iperf3-server.log)"

# `iperf DIRECTION`: one run (upload: b sends; download: -R), its JSON in $WORK.
iperf() {
    local flag=""
    [[ $1 == download ]] && flag=-R
    ip netns exec "$B" iperf3 -c "$IP_A" -p 5201 -t "$SECS" -J $flag >"$WORK/iperf3-$1.json" 2>"$WORK/iperf3-$1.err"
}
for direction in upload download; do
    if iperf "$direction"; then
        pass "iperf3 $direction"
    else
        fail "iperf3 $direction (see $WORK/iperf3-$direction.err)"
    fi
done

# ---- our node ---------------------------------------------------------------
KEY=$WORK/server.key
PEER=$("$BIN" id --key-file "$KEY") || die "cannot make a key"
LISTEN=(--listen "/ip4/$IP_A/udp/4001/quic-v1" --listen "/ip4/$IP_A/tcp/4001")
WS=0
if [[ " $TRANSPORTS " == *" ws "* ]] && "$BIN" run --help | grep -q -- '/ws'; then
    WS=1
    LISTEN+=(--listen "/ip4/$IP_A/tcp/4002/ws")
fi
# No per-IP cap, no bans: 100 fresh connections from one address are the point.
: >"$WORK/server.out"
ip netns exec "$A" "$BIN" run --perf --no-mdns --key-file "$KEY" "${LISTEN[@]}" \
    --max-incoming-per-ip 0 --max-incoming 0 --max-connections 0 --ban-threshold 0 \
    >"$WORK/server.out" 2>"$WORK/server.err" &
PIDS[server]=$!
within 10 grep -q "^LISTEN /ip4/$IP_A/udp/4001/quic-v1" "$WORK/server.out" || die "the node did not start (see $WORK/server.err)"
if ((WS)) && ! within 5 grep -q "^LISTEN /ip4/$IP_A/tcp/4002/ws" "$WORK/server.out"; then
    say "the node did not listen on /ws: WebSocket skipped"
    WS=0
fi

address() {
    case $1 in
        quic) echo "/ip4/$IP_A/udp/4001/quic-v1/p2p/$PEER" ;;
        tcp) echo "/ip4/$IP_A/tcp/4001/p2p/$PEER" ;;
        ws) echo "/ip4/$IP_A/tcp/4002/ws/p2p/$PEER" ;;
    esac
}

RUN=()
for transport in $TRANSPORTS; do
    [[ $transport == ws ]] && ((WS == 0)) && { say "WebSocket: skipped (the node has no /ws transport)"; continue; }
    RUN+=("$transport")
    addr=$(address "$transport")
    # The server's cap (10 GiB) is the most asked for; --duration cuts each direction short.
    for direction in upload download; do
        out=$WORK/perf-$transport-$direction.json
        if ip netns exec "$B" "$BIN" perf "$addr" "--$direction" 10GiB --duration "${SECS}s" --json \
            >"$out" 2>"$WORK/perf-$transport-$direction.err" \
            && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d[sys.argv[2]]["bytes"] == 0)' "$out" "$direction"; then
            pass "perf $transport $direction"
        else
            fail "perf $transport $direction (see $WORK/perf-$transport-$direction.err)"
        fi
    done
    out=$WORK/perf-$transport-connections.json
    if ip netns exec "$B" "$BIN" perf "$addr" --connections "$CONNECTIONS" --json \
        >"$out" 2>"$WORK/perf-$transport-connections.err" \
        && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["failed"] != 0)' "$out"; then
        pass "perf $transport: $CONNECTIONS fresh connections, each a 1-byte round trip"
    else
        fail "perf $transport connections (see $out and $WORK/perf-$transport-connections.err)"
    fi
done

# ---- the table ----------------------------------------------------------------
python3 - "$WORK" "$SECS" "${RUN[@]}" <<'EOF'
import json, os, sys

work, secs, transports = sys.argv[1], sys.argv[2], sys.argv[3:]

def load(name):
    try:
        with open(os.path.join(work, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def iperf(direction):
    d = load(f"iperf3-{direction}.json")
    if not d or "end" not in d:
        return None, []
    total = d["end"]["sum_received"]["bits_per_second"] / 1e9
    samples = [i["sum"]["bits_per_second"] / 1e9 for i in d.get("intervals", [])]
    return total, samples

def fmt(samples):
    return " ".join(f"{s:.2f}" for s in samples)

base = {d: iperf(d) for d in ("upload", "download")}
print(f"\n1-s samples, Gbit/s ({secs} s per direction):")
for d in ("upload", "download"):
    print(f"  iperf3 {d:8} {fmt(base[d][1])}")
    for t in transports:
        p = load(f"perf-{t}-{d}.json")
        if p:
            print(f"  {t:6} {d:8} {fmt(p[d]['samples_gbit_per_s'])}")

cols = ["iperf3 (TCP)"] + transports
print("\n| measurement | " + " | ".join(cols) + " |")
print("|---|" + "---|" * len(cols))
for d in ("upload", "download"):
    b = base[d][0]
    row = [f"{b:.2f}" if b else "-"]
    for t in transports:
        p = load(f"perf-{t}-{d}.json")
        if p and b:
            g = p[d]["gbit_per_s"]
            row.append(f"{g:.2f} ({g / b:.2f} of iperf3)")
        else:
            row.append("-")
    print(f"| {d} Gbit/s | " + " | ".join(row) + " |")
for key, label in (("connect_ms", "connection established, ms p50 / p99 / max"),
                   ("rtt_ms", "1-byte round trip on a fresh connection, ms p50 / p99 / max")):
    row = ["-"]
    for t in transports:
        p = load(f"perf-{t}-connections.json")
        row.append(f"{p[key]['p50']:.2f} / {p[key]['p99']:.2f} / {p[key]['max']:.2f}" if p else "-")
    print(f"| {label} | " + " | ".join(row) + " |")
for t in transports:
    p = load(f"perf-{t}-connections.json")
    if p:
        print(f"{t}: {p['ok']} of {p['connections']} connections ok")
EOF

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
