#!/usr/bin/env bash
# End-to-end test of p2p-node: N real nodes, each in a network namespace of
# its own, on one bridge that itself lives in a namespace of its own, so that
# no interface of the host is touched (mDNS multicast stays between them).
#
#   sudo scripts/e2e-netns.sh        # N=5
#   sudo N=3 scripts/e2e-netns.sh    # or: scripts/e2e-netns.sh 3
#   sudo scripts/e2e-netns.sh 64     # a big LAN: up to 128 nodes
#
# Besides its checks it reports the time from the first node's start to the
# full greet mesh (every node GREETED every other), the per-pair tail (for
# every pair, from the first DISCOVERED on either side to its first GREETED
# in either direction, and to the moment both directions have greeted:
# p50/p99/max, and the slowest pairs; FAIL when a pair's both-directions
# time exceeds PAIR_MAX_SECS, default 10; the nodes print --timestamps for
# this), that every node printed its LISTEN lines first, the disconnects among
# live nodes during a quiet period after it (STABLE_SECS: 60 s from 32 nodes
# on, 5 s below), the mDNS packets per node per second (IPv4 multicast
# counters of the nodes' namespaces), and each node's RSS. For more than 16
# nodes it raises the host's IPv4 neighbour table limits
# (net.ipv4.neigh.default.gc_thresh1..3, shared by all namespaces) for the
# run and restores them on exit.
#
# Needs root and iproute2 (`ip`); installs nothing. Builds
# target/release/p2p-node (P2P_NODE_BIN=... to use another binary instead). Prints one PASS/FAIL line per check and ends with
# `<n> passed, <m> failed`; exits non-zero if any check failed. Namespaces and
# processes are removed on any exit; the node logs are kept on failure
# (KEEP_LOGS=1 keeps them always). MESH_ONLY=1 stops after the quiet period
# (for repeated measurements of the mesh).
set -uo pipefail

N=${1:-${N:-5}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${P2P_NODE_BIN:-$ROOT/target/release/p2p-node}
PREFIX=${P2P_NETNS_PREFIX:-p2pe2e}
BR_NS=$PREFIX-br
SUBNET=10.77.0
PORT=4001
# Generous deadlines, growing with N: a passing run returns as soon as the lines show up.
CONVERGE_SECS=${CONVERGE_SECS:-$((N <= 30 ? 90 : 3 * N))} # discovery, greeting, external address
DISCONNECT_SECS=${DISCONNECT_SECS:-$((60 + N / 2))} # QUIC idle timeout (10 s) after a SIGKILL, then some
QUIET_SECS=3 # intervals (1 s) during which a dead peer must not be greeted
EXIT_SECS=$((5 + N / 8))
STABLE_SECS=${STABLE_SECS:-$((N >= 32 ? 60 : 5))} # quiet period counting disconnects among live nodes
PAIR_MAX_SECS=${PAIR_MAX_SECS:-10} # a pair's bound from discovery to greetings both ways
INTERVAL=${INTERVAL:-1s} # the nodes' --interval
# The nodes print --timestamps: every line starts with the Unix time in ms.
TS='^[0-9]\{1,\} '

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

case $N in '' | *[!0-9]*) die "N must be a number, got '$N'" ;; esac
((N >= 3 && N <= 128)) || die "N must be between 3 and 128 (two peers confirm an external address; one /24)"
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

FOLLOWER=() # the output follower's tail and awk
on_exit() {
    local pid
    for pid in "${FOLLOWER[@]}"; do kill "$pid" 2>/dev/null; done
    netns_cleanup PID
    sysctl_restore
}
trap on_exit EXIT
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

# Each namespace holds an IPv4 neighbour entry per other node, all in one
# host-wide table (gc_thresh3 = 1024 by default): past it new ARP entries
# fail and packets silently stop leaving the namespaces.
if ((N > 16)); then
    sysctl_raise net.ipv4.neigh.default.gc_thresh1 $((N * N))
    sysctl_raise net.ipv4.neigh.default.gc_thresh2 $((2 * N * N))
    sysctl_raise net.ipv4.neigh.default.gc_thresh3 $((4 * N * N))
fi
setup_at=$(now_ms)
make_lan_batch "$BR_NS" "$SUBNET" "$N" node_ns
say "network set up in $(($(now_ms) - setup_at)) ms"
NODE_NS=()
for i in $(seq 1 "$N"); do NODE_NS+=("$(node_ns "$i")"); done

# ---- the nodes -------------------------------------------------------------

out() { echo "$WORK/node$1.out"; }

# `start I`: runs node I in its namespace; its stdout and stderr go to files.
# `start I [GATE]`: runs node I in its namespace; its stdout and stderr go
# to files. With GATE (a FIFO) it waits for one line from it before it
# starts, so that all nodes can start at one instant.
start() {
    local i=$1 gate=${2:-} ns
    ns=$(node_ns "$i")
    # `ip netns exec` and the gate both exec the command, so $! is the node itself.
    RUST_LOG=${RUST_LOG:-info} ip netns exec "$ns" bash -c \
        'if [[ -n $1 ]]; then read -r _ <"$1"; fi; shift; exec "$@"' gate "$gate" "$BIN" run \
        --listen "/ip4/${IP[$i]}/udp/$PORT/quic-v1" --listen "/ip4/${IP[$i]}/tcp/$PORT" \
        --interval "$INTERVAL" --timestamps --message "node$i" --key-file "$WORK/node$i.key" \
        >>"$(out "$i")" 2>>"$WORK/node$i.err" </dev/null &
    PID[i]=$!
}

for i in $(seq 1 "$N"); do
    ID[i]=$("$BIN" id --key-file "$WORK/node$i.key") || die "cannot create the key of node $i"
    : >"$(out "$i")"
    echo "$i ${ID[$i]}" >>"$WORK/ids"
done

# One follower reads every node's output as it is written and prints a line
# "<discovered pairs> <greeted pairs> <DISCONNECTED lines>" whenever one of
# them grows, so progress is polled without rereading megabytes of logs.
mkfifo "$WORK/follow"
tail -n +1 -F $(for i in $(seq 1 "$N"); do out "$i"; done) >"$WORK/follow" 2>/dev/null &
FOLLOWER+=($!)
# mawk reads a pipe in blocks unless told otherwise: lines would arrive late.
follow_awk=(awk)
awk -W version 2>/dev/null | grep -q mawk && follow_awk=(awk -W interactive)
"${follow_awk[@]}" -v ids="$WORK/ids" '
    BEGIN { while ((getline line < ids) > 0) { split(line, f, " "); known[f[2]] = 1 } }
    /^==> .* <==$/ { node = $2; sub(/.*node/, "", node); sub(/\.out$/, "", node); next }
    { sub(/^[0-9]+ /, "") } # the timestamp
    $1 == "DISCOVERED" && ($2 in known) && !((node, $2) in seen_d) { seen_d[node, $2] = 1; d++; changed = 1 }
    $1 == "GREETED" && ($2 in known) && !((node, $2) in seen_g) { seen_g[node, $2] = 1; g++; changed = 1 }
    $1 == "DISCONNECTED" { x++; changed = 1 }
    changed { print d + 0, g + 0, x + 0; fflush(); changed = 0 }
' <"$WORK/follow" >"$WORK/progress" &
FOLLOWER+=($!)
progress() { local p; p=$(tail -n 1 "$WORK/progress"); echo "${p:-0 0 0}"; }

# All nodes wait at a gate, then start at one instant (started one after
# the other, the last of 64 started 6 s after the first, slowed by the ones
# already running): the worst case for the LAN, and one clock for all.
mkfifo "$WORK/gate"
for i in $(seq 1 "$N"); do start "$i" "$WORK/gate"; done
sleep 0.5
MCAST_START=$(mcast_counters "${NODE_NS[@]}")
exec 3<>"$WORK/gate" # read-write: opening never blocks, and late readers still find their line
START_AT=$(now_ms)
for i in $(seq 1 "$N"); do echo go; done >&3
say "started $N nodes behind a gate, all let go at once: ${PID[*]}"
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# `lines_after I OFFSET`: node I's output past its first OFFSET lines.
lines_after() { tail -n +"$(($2 + 1))" "$(out "$1")"; }
# `grep_after I OFFSET GREP-ARGS...`: grep over lines_after. Not a pipe: grep stops at its
# first match, and tail, still writing a busy node's output, would die of SIGPIPE and (with
# pipefail) turn a match into a failure.
grep_after() {
    local i=$1 offset=$2
    shift 2
    grep "$@" < <(lines_after "$i" "$offset")
}
count_lines() { wc -l <"$(out "$1")"; }
has_line() { grep -q -- "$2" "$(out "$1")"; }
alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

others() {
    local j
    for j in $(seq 1 "$N"); do [[ $j != "$1" ]] && echo "$j"; done
}

# ---- 1. discovery and greeting ------------------------------------------

PAIRS=$((N * (N - 1)))
DISCOVERED_AT=""
MESH_AT=""
# The mesh is full when every node GREETED every other; the checks below also
# want every node to have DISCOVERED every other (over mDNS).
mesh_done() {
    local d g x
    read -r d g x < <(progress)
    echo "$(($(now_ms) - START_AT)) $d $g" >>"$WORK/curve"
    [[ -z $DISCOVERED_AT ]] && ((d >= PAIRS)) && DISCOVERED_AT=$(now_ms)
    [[ -z $MESH_AT ]] && ((g >= PAIRS)) && MESH_AT=$(now_ms)
    [[ -n $DISCOVERED_AT && -n $MESH_AT ]]
}
within "$CONVERGE_SECS" mesh_done
read -r d g x < <(progress)
if [[ -n $MESH_AT ]]; then
    MESH_MS=$((MESH_AT - START_AT))
    say "full greet mesh of $N nodes ($PAIRS pairs) $MESH_MS ms after the start (discovery complete after $((${DISCOVERED_AT:-START_AT} - START_AT)) ms)"
else
    say "no full mesh within ${CONVERGE_SECS}s: $d of $PAIRS pairs discovered, $g greeted"
    MESH_MS=""
fi
# How the mesh filled: when 50/90/99/100 % of the pairs were discovered and greeted.
awk -v pairs="$PAIRS" '
    BEGIN { split("50 90 99 100", pct, " ") }
    { for (k = 1; k <= 4; k++) {
        if (!(k in dt) && $2 * 100 >= pct[k] * pairs) dt[k] = $1
        if (!(k in gt) && $3 * 100 >= pct[k] * pairs) gt[k] = $1
    } }
    END {
        line = "pairs at 50/90/99/100 %: discovered"
        for (k = 1; k <= 4; k++) line = line " " (k in dt ? sprintf("%.1f", dt[k] / 1000) : "-")
        line = line " s, greeted"
        for (k = 1; k <= 4; k++) line = line " " (k in gt ? sprintf("%.1f", gt[k] / 1000) : "-")
        print "# " line " s"
    }' "$WORK/curve" >&2
MCAST_MESH=$(mcast_counters "${NODE_NS[@]}")
exec 3>&- # the gate: every node has long taken its line
MESH_COUNTED_AT=$(now_ms)

# Per node, once: the peers it discovered and greeted.
mesh_report() {
    awk -v ids="$WORK/ids" '
        BEGIN { while ((getline line < ids) > 0) { split(line, f, " "); known[f[2]] = f[1] } }
        FNR == 1 { node = FILENAME; sub(/.*node/, "", node); sub(/\.out$/, "", node) }
        { sub(/^[0-9]+ /, "") } # the timestamp
        $1 == "DISCOVERED" && ($2 in known) { d[node, known[$2]] = 1 }
        $1 == "GREETED" && ($2 in known) { g[node, known[$2]] = 1 }
        END {
            for (i = 1; i <= n; i++) {
                missing = ""
                for (j = 1; j <= n; j++) {
                    if (i == j) continue
                    if (!((i, j) in d)) missing = missing " node" j ":not-discovered"
                    if (!((i, j) in g)) missing = missing " node" j ":not-greeted"
                }
                print i missing
            }
        }' n="$N" $(for i in $(seq 1 "$N"); do out "$i"; done)
}
while read -r i missing; do
    if [[ -z $missing ]]; then
        pass "node$i discovered and greeted all $((N - 1)) other nodes"
    else
        fail "node$i within ${CONVERGE_SECS}s:$(echo " $missing" | cut -c1-400)"
    fi
done < <(mesh_report)

# ---- 1b. the per-pair tail -------------------------------------------------

# For every pair {i, j}: from the first DISCOVERED on either side to the first
# GREETED in either direction ("F" lines) and to the moment both directions
# have greeted ("B" lines), in ms, from the nodes' timestamps; "M" for a pair
# discovered but not greeted both ways.
pair_delays() {
    awk -v ids="$WORK/ids" -v n="$N" '
        BEGIN { while ((getline line < ids) > 0) { split(line, f, " "); known[f[2]] = f[1] } }
        FNR == 1 { node = FILENAME; sub(/.*node/, "", node); sub(/\.out$/, "", node); node += 0 }
        $2 == "DISCOVERED" && ($3 in known) {
            j = known[$3]; k = (node < j) ? node " " j : j " " node
            if (!(k in d) || $1 + 0 < d[k]) d[k] = $1 + 0
        }
        $2 == "GREETED" && ($3 in known) && !((node, known[$3]) in g) { g[node, known[$3]] = $1 + 0 }
        END {
            for (k in d) {
                split(k, p, " "); i = p[1]; j = p[2]
                a = ((i, j) in g) ? g[i, j] : ""; b = ((j, i) in g) ? g[j, i] : ""
                if (a != "" || b != "") {
                    first = (a == "") ? b : (b == "") ? a : (a < b ? a : b)
                    print "F", first - d[k], "node" i "-node" j
                }
                if (a != "" && b != "") print "B", (a > b ? a : b) - d[k], "node" i "-node" j
                else print "M", 0, "node" i "-node" j
            }
        }' $(for i in $(seq 1 "$N"); do out "$i"; done)
}
# `tail_stats KIND`: "<p50> <p99> <max> <pairs> <slowest pairs>" (seconds) of the KIND lines.
tail_stats() {
    grep "^$1 " "$WORK/pairs" | sort -k2,2n | awk '
        { v[NR] = $2; who[NR] = $3 }
        END {
            if (NR == 0) { print "- - - 0 -"; exit }
            slow = ""
            for (k = NR; k > NR - 3 && k > 0; k--) slow = slow (slow == "" ? "" : ",") who[k] ":" sprintf("%.1f", v[k] / 1000)
            printf "%.2f %.2f %.2f %d %s\n", v[int((NR - 1) * 0.5) + 1] / 1000, v[int((NR - 1) * 0.99) + 1] / 1000, v[NR] / 1000, NR, slow
        }'
}
pair_delays >"$WORK/pairs"
read -r F50 F99 FMAX FN FSLOW < <(tail_stats F)
read -r B50 B99 BMAX BN BSLOW < <(tail_stats B)
UNGREETED=$(grep -c "^M " "$WORK/pairs")
echo "REPORT pairs discovery-to-first-greeting (either direction): p50 ${F50} s, p99 ${F99} s, max ${FMAX} s over $FN pairs; slowest $FSLOW"
echo "REPORT pairs discovery-to-both-greeted: p50 ${B50} s, p99 ${B99} s, max ${BMAX} s over $BN pairs; slowest $BSLOW; $UNGREETED pairs not greeted both ways"
if [[ $BMAX != - ]] && ((UNGREETED == 0)) && awk -v m="$BMAX" -v b="$PAIR_MAX_SECS" 'BEGIN { exit !(m <= b) }'; then
    pass "every pair greeted both ways within ${PAIR_MAX_SECS}s of its discovery (max ${BMAX}s, $BSLOW)"
else
    fail "per-pair tail: max ${BMAX}s from discovery to greetings both ways (bound ${PAIR_MAX_SECS}s; PAIR_MAX_SECS), slowest $BSLOW, $UNGREETED pairs not greeted both ways"
fi

# Every node printed its LISTEN lines before any other line.
for i in $(seq 1 "$N"); do
    first=$(awk '{ sub(/^[0-9]+ /, ""); print $1; exit }' "$(out "$i")")
    if [[ $first == LISTEN ]]; then
        pass "node$i printed LISTEN first"
    else
        fail "node$i printed '$first' before its LISTEN lines: $(head -n 3 "$(out "$i")" | cut -c1-120 | tr '\n' '|')"
    fi
done

# ---- 2. external addresses ------------------------------------------------

for i in $(seq 1 "$N"); do
    if within "$CONVERGE_SECS" has_line "$i" "${TS}EXTERNAL /ip4/${IP[$i]}/"; then
        pass "node$i confirmed its external address: $(grep -m1 "${TS}EXTERNAL /ip4/${IP[$i]}/" "$(out "$i")" | cut -d' ' -f3)"
    else
        fail "node$i printed no EXTERNAL /ip4/${IP[$i]}/... within ${CONVERGE_SECS}s"
    fi
done

# ---- 2b. a quiet period: no disconnects among live nodes ---------------------

read -r _ _ x0 < <(progress)
MCAST_QUIET0=$(mcast_counters "${NODE_NS[@]}")
QUIET_AT=$(now_ms)
sleep "$STABLE_SECS"
read -r _ _ x1 < <(progress)
MCAST_QUIET1=$(mcast_counters "${NODE_NS[@]}")
QUIET_MS=$(($(now_ms) - QUIET_AT))
DISCONNECTS=$((x1 - x0))
if ((DISCONNECTS == 0)); then
    pass "no DISCONNECTED among the $N live nodes in ${STABLE_SECS}s after the mesh"
else
    fail "$DISCONNECTS DISCONNECTED lines among the $N live nodes in ${STABLE_SECS}s after the mesh"
fi
for i in $(seq 1 "$N"); do alive "$i" || fail "node$i exited during the quiet period"; done

# RSS of every node (kB), from /proc/PID/status.
RSS=$(for i in $(seq 1 "$N"); do awk '$1 == "VmRSS:" { print $2 }' "/proc/${PID[$i]}/status" 2>/dev/null; done | sort -n)
rss_n=$(wc -l <<<"$RSS")
RSS_MIN=$(head -n 1 <<<"$RSS")
RSS_MED=$(sed -n "$(((rss_n + 1) / 2))p" <<<"$RSS")
RSS_MAX=$(tail -n 1 <<<"$RSS")

# mDNS packets per node per second: the IPv4 multicast packets the nodes'
# namespaces sent (OutMcastPkts) and received (InMcastPkts, own packets
# looped back included). mDNS is the only IPv4 multicast in them but for a
# few IGMP membership reports at start. Drops: packets a node's port-5353
# socket dropped because its receive buffer was full (node too slow to read).
rates() { # rates IN0 OUT0 DROPS0 IN1 OUT1 DROPS1 MS
    awk -v n="$N" -v i0="$1" -v o0="$2" -v r0="$3" -v i1="$4" -v o1="$5" -v r1="$6" -v ms="$7" \
        'BEGIN { s = ms / 1000; printf "sent %.2f, received %.1f pkts/node/s over %.1f s (%d sent in all; %d dropped by full mDNS socket buffers)", (o1 - o0) / n / s, (i1 - i0) / n / s, s, o1 - o0, r1 - r0 }'
}
# shellcheck disable=SC2086 # word splitting of the counters is meant
MDNS_START_RATE=$(rates $MCAST_START $MCAST_MESH $((MESH_COUNTED_AT - START_AT)))
# shellcheck disable=SC2086
MDNS_QUIET_RATE=$(rates $MCAST_QUIET0 $MCAST_QUIET1 "$QUIET_MS")

echo "REPORT nodes=$N mesh_ms=${MESH_MS:-none} discovery_ms=$((${DISCOVERED_AT:-START_AT} - START_AT)) disconnects_${STABLE_SECS}s=$DISCONNECTS rss_kb_min/median/max=$RSS_MIN/$RSS_MED/$RSS_MAX"
echo "REPORT mdns start-to-mesh: $MDNS_START_RATE"
echo "REPORT mdns quiet period: $MDNS_QUIET_RATE"
echo "REPORT load average at the start $LOAD_AT_START, at the end of the quiet period $(cut -d' ' -f1-3 /proc/loadavg)"

# MESH_ONLY=1: stop here (the mesh, the per-pair tail, the quiet period), for repeated measurements.
if [[ ${MESH_ONLY:-0} == 1 ]]; then
    echo "$PASSED passed, $FAILED failed (MESH_ONLY: the kill, restart, one-shot greet and SIGTERM checks not run)"
    ((FAILED == 0))
    exit
fi

# ---- 3. a node killed ------------------------------------------------------

K=$N
declare -a MARK
for i in $(others "$K"); do MARK[i]=$(count_lines "$i"); done
{ kill -KILL "${PID[$K]}" && wait "${PID[$K]}"; } 2>/dev/null # quiet: no "Killed" job notice
PID[K]=""
say "killed node$K (${ID[$K]}) with SIGKILL"

disconnected() { grep_after "$1" "${MARK[$1]}" -q "${TS}DISCONNECTED ${ID[$K]}$"; }
declare -a GONE_AT
for i in $(others "$K"); do
    if within "$DISCONNECT_SECS" disconnected "$i"; then
        GONE_AT[i]=$((MARK[i] + $(grep_after "$i" "${MARK[$i]}" -n -m1 "${TS}DISCONNECTED ${ID[$K]}$" | cut -d: -f1)))
    else
        GONE_AT[i]=""
    fi
done
# A few greeting intervals during which nobody may greet the dead node.
sleep "$QUIET_SECS"
for i in $(others "$K"); do
    if [[ -z ${GONE_AT[$i]} ]]; then
        fail "node$i printed no DISCONNECTED for killed node$K within ${DISCONNECT_SECS}s"
    elif grep_after "$i" "${GONE_AT[$i]}" -q "${TS}GREETED ${ID[$K]} "; then
        fail "node$i greeted killed node$K after DISCONNECTED: $(grep_after "$i" "${GONE_AT[$i]}" -m1 "${TS}GREETED ${ID[$K]} ")"
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
restarted_listens() { grep_after "$K" "$RESTART_MARK" -q "${TS}LISTEN .*/p2p/"; }
if within 10 restarted_listens; then
    peer=$(grep_after "$K" "$RESTART_MARK" -m1 "${TS}LISTEN .*/p2p/" | sed 's|.*/p2p/||')
    if [[ $peer == "${ID[$K]}" ]]; then
        pass "node$K restarted with the same key file has the same PeerId ($peer)"
    else
        fail "node$K restarted as $peer, not ${ID[$K]}"
    fi
else
    fail "restarted node$K printed no LISTEN line"
fi
greeted_again() { grep_after "$1" "${MARK[$1]}" -q "${TS}GREETED ${ID[$K]} "; }
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
