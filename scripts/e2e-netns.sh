#!/usr/bin/env bash
# End-to-end test of p2p-node: N real nodes, each in a network namespace of
# its own, on one bridge that itself lives in a namespace of its own, so that
# no interface of the host is touched (mDNS multicast stays between them).
#
#   sudo scripts/e2e-netns.sh        # N=5
#   sudo N=3 scripts/e2e-netns.sh    # or: scripts/e2e-netns.sh 3
#
# Needs root and iproute2 (`ip`); installs nothing. Builds
# target/release/p2p-node (P2P_NODE_BIN=... to use another binary instead). Prints one PASS/FAIL line per check and ends with
# `<n> passed, <m> failed`; exits non-zero if any check failed. Namespaces and
# processes are removed on any exit; the node logs are kept on failure
# (KEEP_LOGS=1 keeps them always).
set -uo pipefail

N=${1:-${N:-5}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${P2P_NODE_BIN:-$ROOT/target/release/p2p-node}
PREFIX=p2pe2e
BR_NS=$PREFIX-br
SUBNET=10.77.0
PORT=4001
# Generous deadlines: a passing run returns as soon as the lines show up.
CONVERGE_SECS=${CONVERGE_SECS:-90} # discovery, greeting, external address
DISCONNECT_SECS=${DISCONNECT_SECS:-60} # QUIC idle timeout (10 s) after a SIGKILL, then some
QUIET_SECS=3 # intervals (1 s) during which a dead peer must not be greeted
EXIT_SECS=5

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

case $N in '' | *[!0-9]*) die "N must be a number, got '$N'" ;; esac
((N >= 3 && N <= 50)) || die "N must be between 3 and 50 (two peers confirm an external address)"
[[ $(id -u) == 0 ]] || die "needs root to create network namespaces (try: sudo $0)"
command -v ip >/dev/null || die "needs iproute2's 'ip' (apt-get install iproute2)"
say "$(ip -V)"

# ---- state and cleanup -----------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2pe2e.XXXXXX")
declare -a PID ID IP
NAMESPACES=()
PASSED=0
FAILED=0

node_ns() { echo "$PREFIX-node$1"; }

trap 'netns_cleanup PID' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---- the binary ------------------------------------------------------------

# Always (re)build the default binary: cargo makes this a no-op when it is up to
# date, and a stale binary would test yesterday's code.
if [[ -z ${P2P_NODE_BIN:-} ]]; then
    say "building $BIN"
    (cd "$ROOT" && cargo build --release -p p2p-node) >&2 || die "cannot build p2p-node"
fi
[[ -x $BIN ]] || die "no binary at $BIN"

# ---- the network -----------------------------------------------------------

make_lan "$BR_NS" "$SUBNET" "$N" node_ns

# ---- the nodes -------------------------------------------------------------

out() { echo "$WORK/node$1.out"; }

# `start I`: runs node I in its namespace; its stdout and stderr go to files.
start() {
    local i=$1 ns
    ns=$(node_ns "$i")
    # `ip netns exec` execs the command, so $! is the node itself.
    RUST_LOG=${RUST_LOG:-info} ip netns exec "$ns" "$BIN" run \
        --listen "/ip4/${IP[$i]}/udp/$PORT/quic-v1" --listen "/ip4/${IP[$i]}/tcp/$PORT" \
        --interval 1s --message "node$i" --key-file "$WORK/node$i.key" \
        >>"$(out "$i")" 2>>"$WORK/node$i.err" </dev/null &
    PID[i]=$!
}

for i in $(seq 1 "$N"); do
    ID[i]=$("$BIN" id --key-file "$WORK/node$i.key") || die "cannot create the key of node $i"
    : >"$(out "$i")"
    start "$i"
done
say "started $N nodes: ${PID[*]}"

# `lines_after I OFFSET`: node I's output past its first OFFSET lines.
lines_after() { tail -n +"$(($2 + 1))" "$(out "$1")"; }
count_lines() { wc -l <"$(out "$1")"; }
has_line() { grep -q -- "$2" "$(out "$1")"; }
alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

others() {
    local j
    for j in $(seq 1 "$N"); do [[ $j != "$1" ]] && echo "$j"; done
}

# Every node has discovered and greeted every other node.
knows_all() {
    local i=$1 j
    for j in $(others "$i"); do
        has_line "$i" "^DISCOVERED ${ID[$j]} " && has_line "$i" "^GREETED ${ID[$j]} " || return 1
    done
}

# ---- 1. discovery and greeting ------------------------------------------

for i in $(seq 1 "$N"); do
    if within "$CONVERGE_SECS" knows_all "$i"; then
        pass "node$i discovered and greeted all $((N - 1)) other nodes"
    else
        missing=()
        for j in $(others "$i"); do
            has_line "$i" "^DISCOVERED ${ID[$j]} " || missing+=("node$j:not-discovered")
            has_line "$i" "^GREETED ${ID[$j]} " || missing+=("node$j:not-greeted")
        done
        fail "node$i within ${CONVERGE_SECS}s: ${missing[*]}"
    fi
done

# ---- 2. external addresses ------------------------------------------------

for i in $(seq 1 "$N"); do
    if within "$CONVERGE_SECS" has_line "$i" "^EXTERNAL /ip4/${IP[$i]}/"; then
        pass "node$i confirmed its external address: $(grep -m1 "^EXTERNAL /ip4/${IP[$i]}/" "$(out "$i")" | cut -d' ' -f2)"
    else
        fail "node$i printed no EXTERNAL /ip4/${IP[$i]}/... within ${CONVERGE_SECS}s"
    fi
done

# ---- 3. a node killed ------------------------------------------------------

K=$N
declare -a MARK
for i in $(others "$K"); do MARK[i]=$(count_lines "$i"); done
{ kill -KILL "${PID[$K]}" && wait "${PID[$K]}"; } 2>/dev/null # quiet: no "Killed" job notice
PID[K]=""
say "killed node$K (${ID[$K]}) with SIGKILL"

disconnected() { lines_after "$1" "${MARK[$1]}" | grep -q "^DISCONNECTED ${ID[$K]}$"; }
declare -a GONE_AT
for i in $(others "$K"); do
    if within "$DISCONNECT_SECS" disconnected "$i"; then
        GONE_AT[i]=$((MARK[i] + $(lines_after "$i" "${MARK[$i]}" | grep -n -m1 "^DISCONNECTED ${ID[$K]}$" | cut -d: -f1)))
    else
        GONE_AT[i]=""
    fi
done
# A few greeting intervals during which nobody may greet the dead node.
sleep "$QUIET_SECS"
for i in $(others "$K"); do
    if [[ -z ${GONE_AT[$i]} ]]; then
        fail "node$i printed no DISCONNECTED for killed node$K within ${DISCONNECT_SECS}s"
    elif lines_after "$i" "${GONE_AT[$i]}" | grep -q "^GREETED ${ID[$K]} "; then
        fail "node$i greeted killed node$K after DISCONNECTED: $(lines_after "$i" "${GONE_AT[$i]}" | grep -m1 "^GREETED ${ID[$K]} ")"
    elif ! alive "$i"; then
        fail "node$i exited after node$K was killed"
    else
        pass "node$i: DISCONNECTED node$K, no GREETED for it afterwards, still running"
    fi
done

# ---- 4. the node restarted with its key --------------------------------------

for i in $(others "$K"); do MARK[i]=$(count_lines "$i"); done
RESTART_MARK=$(count_lines "$K")
start "$K"
say "restarted node$K"
restarted_listens() { lines_after "$K" "$RESTART_MARK" | grep -q "^LISTEN .*/p2p/"; }
if within 10 restarted_listens; then
    peer=$(lines_after "$K" "$RESTART_MARK" | grep -m1 "^LISTEN .*/p2p/" | sed 's|.*/p2p/||')
    if [[ $peer == "${ID[$K]}" ]]; then
        pass "node$K restarted with the same key file has the same PeerId ($peer)"
    else
        fail "node$K restarted as $peer, not ${ID[$K]}"
    fi
else
    fail "restarted node$K printed no LISTEN line"
fi
greeted_again() { lines_after "$1" "${MARK[$1]}" | grep -q "^GREETED ${ID[$K]} "; }
for i in $(others "$K"); do
    if within "$CONVERGE_SECS" greeted_again "$i"; then
        pass "node$i greets restarted node$K again"
    else
        fail "node$i did not greet restarted node$K within ${CONVERGE_SECS}s"
    fi
done

# ---- 5. a one-shot greet across namespaces -----------------------------------

for transport in "udp/$PORT/quic-v1" "tcp/$PORT"; do
    target="/ip4/${IP[2]}/$transport/p2p/${ID[2]}"
    result=$(RUST_LOG=warn ip netns exec "$(node_ns 1)" "$BIN" greet "$target" --message e2e --timeout 10s \
        2>"$WORK/greet.err")
    status=$?
    if ((status == 0)) && [[ $result == "GREETED ${ID[2]} "*'"node2 (you said: e2e)"' ]]; then
        pass "greet from node1's namespace to $target: $result"
    else
        fail "greet from node1's namespace to $target: exit $status, stdout: $result, stderr: $(cat "$WORK/greet.err")"
    fi
done

# ---- 6. SIGTERM ------------------------------------------------------------

for i in $(seq 1 "$N"); do
    alive "$i" || fail "node$i was not running before SIGTERM"
done
for i in $(seq 1 "$N"); do [[ -n ${PID[$i]} ]] && kill -TERM "${PID[$i]}"; done
term_at=$(now_ms)
any_alive() {
    local i
    for i in $(seq 1 "$N"); do [[ -n ${PID[$i]} ]] && alive "$i" && return 0; done
    return 1
}
within "$EXIT_SECS" eval '! any_alive'
elapsed=$(($(now_ms) - term_at))
for i in $(seq 1 "$N"); do
    [[ -n ${PID[$i]} ]] || continue
    if alive "$i"; then
        fail "node$i still running ${EXIT_SECS}s after SIGTERM"
        continue
    fi
    wait "${PID[$i]}"
    status=$?
    PID[i]=""
    if ((status == 0)); then
        pass "node$i exited 0 on SIGTERM (all nodes gone ${elapsed} ms after it)"
    else
        fail "node$i exited with status $status on SIGTERM"
    fi
done

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
