#!/usr/bin/env bash
# Two p2p-nodes behind real NATs find and greet each other by PeerId alone,
# through a public relay, and upgrade to a direct connection by hole punching
# (issue 15: Kademlia, circuit relay v2, DCUtR, AutoNAT v2). Everything runs
# in network namespaces of this script's own (prefix p2pnat-):
#
#        p2pnat-relay  198.51.100.10        the "internet": bridge br0 in p2pnat-pub,
#              |                            198.51.100.0/24 (TEST-NET-2), no default
#   ===========+=========== br0 ==========  route anywhere, no link to the host
#        |                        |
#   wan0 198.51.100.11       wan0 198.51.100.12
#   p2pnat-ra (NAT)          p2pnat-rb (NAT)   nftables: masquerade on wan0, forward
#   lan0 10.0.1.1            lan0 10.0.2.1     chain lets in replies only, input chain
#        |                        |            drops new packets from wan0
#   eth0 10.0.1.10           eth0 10.0.2.10
#   p2pnat-a (node A)        p2pnat-b (node B)  default route via their router
#
# Cone NAT (port-restricted, endpoint-independent mapping): `masquerade`, a
# forward chain that accepts established/related and LAN->WAN only, and an
# input chain that drops new inbound packets addressed to the router itself.
# Without that input rule, at LAN latency the peer's first punch packet reaches
# the router before ours has left, its conntrack entry is confirmed, and
# masquerade then moves our mapping to another port: punching fails every time
# (TCP: the router even answers with a reset). A packet dropped in the input
# chain is never confirmed, so it leaves no entry. `--selftest` shows both.
# Symmetric NAT: the same with `masquerade fully-random` (a new random port for
# every new destination: the port the relay saw is not the one the peer gets).
#
# Every link has permanent neighbour entries (fixed MACs), so the host-wide
# neighbour table (net.ipv4.neigh.default.gc_thresh3, shared by all namespaces,
# filled by other tests running at the same time) can never starve this run;
# no sysctl of the host is changed. IPv6 is off in our namespaces. Delay: `tc
# netem delay $NAT_DELAY` on each router's WAN side (one way) where the kernel
# has netem; where it has not, the output says so and the run goes on without.
#
# Modes:
#   sudo scripts/nat-netns.sh --selftest   the topology alone, no p2p-node (about 30 s):
#       routes, reachability, masquerade, the input chain, and a UDP hole punch
#       by hand (scripts/lib/nat-probe.py) that works through cone NATs, fails
#       without the input chain when the peer punches first, and fails through
#       symmetric NATs
#   sudo scripts/nat-netns.sh --short      CI: one cone and one symmetric trial over
#       QUIC, and the address checks (under 2 minutes)
#   sudo scripts/nat-netns.sh              the full run: the self-test, 20 cone trials
#       over QUIC and 20 over TCP, 5 symmetric trials over each, a relay restart,
#       and the address checks
#
# A trial: fresh keys for A and B; B starts with `--bootstrap <relay>` and
# reserves a slot on the relay (RESERVED); A starts with `--bootstrap <relay>
# --peer /p2p/<B's PeerId>`; measured from A's start: its first greeting of B
# over the relay (GREETED ... path=relayed), the first HOLE_PUNCHED of either
# side (over QUIC both sides dial, so either may report it first), A's first
# greeting of B with path=direct, A's (and B's) HOLE_PUNCH_FAILED. One
# transport per trial, as far as the node lets a script choose: A and B listen
# on QUIC only or TCP only and bootstrap with the relay's address of that
# transport (the relay listens on both), but B's RESERVED lists both of the
# relay's addresses and the node dials with both transports, so the relayed
# and the punched connection may use the other one; the summary counts which.
# Each trial uses fresh ports, so no conntrack entry of an earlier trial helps
# it. One relay serves the whole run (it sees every earlier trial's nodes come
# and go: churn); FRESH_RELAY=1 starts one afresh per trial instead, with
# --external-addr, which isolates the punch from the DHT's state.
# Targets (issue 15): cone: every trial greets, >= 95 % go direct, median from
# A's start to its first direct greeting <= 1 s. Symmetric: every trial greets
# over the relay and A prints HOLE_PUNCH_FAILED within 20 s. Relay restart: B
# prints RESERVED again, and a fresh node greets it by PeerId, within 10 s of
# the restart. No node behind NAT prints EXTERNAL with its private 10.x
# address; the relay confirms 198.51.100.10 within 10 s of its first peer.
#
# Knobs (environment): P2P_NODE_BIN (else `cargo build -p p2p-node`, debug, under
# $CARGO_TARGET_DIR or target/; the script runs a copy), CONE_TRIALS (20),
# SYM_TRIALS (5), TRANSPORTS ("quic tcp"), NAT_DELAY (10ms; 0 for none),
# INTERVAL (the nodes' --interval, 200ms), TRIAL_SECS (30), SYM_SECS (22),
# RELAY_KILL_SIGNAL (TERM), FRESH_RELAY=1 (a relay started afresh for each trial, see
# below), MIN_TRIAL_MS (2500), KEEP_LOGS=1 (keep the logs; they are kept on failure).
# Prints one PASS/FAIL line per check, a summary table, and `<n> passed, <m>
# failed`; exits non-zero if any check failed. Needs root, iproute2, nftables
# (installed with apt-get when missing) and python3. Namespaces and processes
# are removed on any exit (processes by PID, then the namespaces).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BUILT_BIN=${P2P_NODE_BIN:-$TARGET_DIR/debug/p2p-node}
PROBE=$ROOT/scripts/lib/nat-probe.py
PREFIX=${P2P_NETNS_PREFIX:-p2pnat}

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

MODE=full
for arg in "$@"; do
    case $arg in
        --short) MODE=short ;;
        --selftest) MODE=selftest ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (expected --short, --selftest or nothing)" ;;
    esac
done

if [[ $MODE == short ]]; then
    CONE_TRIALS=${CONE_TRIALS:-1}
    SYM_TRIALS=${SYM_TRIALS:-1}
    TRANSPORTS=${TRANSPORTS:-quic}
else
    CONE_TRIALS=${CONE_TRIALS:-20}
    SYM_TRIALS=${SYM_TRIALS:-5}
    TRANSPORTS=${TRANSPORTS:-quic tcp}
fi
NAT_DELAY=${NAT_DELAY:-10ms}     # one way, on each router's WAN side
INTERVAL=${INTERVAL:-200ms}      # the nodes' --interval: a direct path is greeted at the next tick
TRIAL_SECS=${TRIAL_SECS:-30}     # a cone trial ends at A's first direct greeting or after this
SYM_SECS=${SYM_SECS:-22}         # a symmetric trial ends at A's HOLE_PUNCH_FAILED + relayed greeting, or after this
RESERVE_SECS=${RESERVE_SECS:-20} # B's RESERVED before A starts
# Trials start at least this far apart (every trial's A and B reserve on the relay, each
# from its router's one address). Note libp2p's relay rate limiters are token buckets
# refilled ONE token per interval: RelayServerConfig's "30 per IP per minute" is a
# bucket of 30 refilled one a minute, so with one relay a run of more than about 30
# trials plus one per minute is refused reservations whatever the pacing (FRESH_RELAY=1
# starts each trial with full buckets).
MIN_TRIAL_MS=${MIN_TRIAL_MS:-2500}
# FRESH_RELAY=1: every trial gets a relay started afresh (same key and address, an empty
# DHT, --external-addr given), instead of one relay for the whole run that sees every
# earlier trial's nodes come and go; it isolates the punch from the DHT's churn.
FRESH_RELAY=${FRESH_RELAY:-}
RELAY_KILL_SIGNAL=${RELAY_KILL_SIGNAL:-TERM}
DIRECT_MEDIAN_MS=1000            # the targets
DIRECT_SHARE=95
SYM_FAIL_MS=20000
RESTART_MS=10000
RELAY_CONFIRM_MS=10000
STOP_SECS=5                      # a node gets this long after SIGTERM, then SIGKILL

PUB_NET=198.51.100
RELAY_IP=$PUB_NET.10
RELAY_PORT=4001
declare -A WAN_IP=([a]=$PUB_NET.11 [b]=$PUB_NET.12)
declare -A LAN_NET=([a]=10.0.1 [b]=10.0.2)
declare -A NODE_IP=([a]=10.0.1.10 [b]=10.0.2.10)
declare -A ROUTER_LAN_IP=([a]=10.0.1.1 [b]=10.0.2.1)
# Fixed, locally administered MACs: the permanent neighbour entries need them.
RELAY_MAC=02:64:00:00:00:0a
declare -A WAN_MAC=([a]=02:64:00:00:00:0b [b]=02:64:00:00:00:0c)
declare -A LAN_MAC=([a]=02:0a:01:00:00:01 [b]=02:0a:02:00:00:01)
declare -A NODE_MAC=([a]=02:0a:01:00:00:0a [b]=02:0a:02:00:00:0a)

PUB_NS=$PREFIX-pub
RELAY_NS=$PREFIX-relay
declare -A ROUTER_NS=([a]=$PREFIX-ra [b]=$PREFIX-rb)
declare -A NODE_NS=([a]=$PREFIX-a [b]=$PREFIX-b)

[[ $(id -u) == 0 ]] || die "needs root to create network namespaces (try: sudo $0)"
need_pkg() { # need_pkg COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is missing
    command -v "$1" >/dev/null && return 0
    say "installing $2 (for $1)"
    command -v apt-get >/dev/null || die "needs $1 (package $2), and there is no apt-get to install it"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2; } ||
        die "cannot install $2"
}
need_pkg ip iproute2
need_pkg tc iproute2
need_pkg nft nftables
command -v python3 >/dev/null || die "needs python3 (for scripts/lib/nat-probe.py)"
say "$(ip -V); $(nft --version); mode $MODE"

# The namespace names are fixed, and making them removes what a killed run left: a second
# run at the same time would tear down the first one's network. One at a time.
command -v flock >/dev/null && {
    exec 9>"/run/lock/$PREFIX-netns.lock" 2>/dev/null || exec 9>"${TMPDIR:-/tmp}/$PREFIX-netns.lock"
    flock -n 9 || die "another nat-netns.sh run is under way (it holds the lock on fd 9's file); one at a time"
}

# ---- state and cleanup ----------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2pnat.XXXXXX")
declare -A PIDS=() # name -> pid of every node and probe we started
NAMESPACES=()
PASSED=0
FAILED=0

# Logs are kept when a check failed (netns_cleanup) and when the script stopped early.
trap 'rc=$?; ((rc != 0)) && KEEP_LOGS=1; netns_cleanup PIDS' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

check() { # check "description" COMMAND...: PASS if the command succeeds
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
figure() { echo "  $*"; }
header() { echo; echo "== $*"; }
holds() {
    local expr=$1 vars=() v
    shift
    for v in "$@"; do vars+=(-v "$v"); done
    awk "${vars[@]}" "BEGIN { exit !($expr) }"
}

# ---- the binary -----------------------------------------------------------------------------

BIN=""
NO_MDNS=()
if [[ $MODE != selftest ]]; then
    # Always (re)build the default binary: cargo makes this a no-op when it is up to
    # date, and a stale binary would test yesterday's code.
    if [[ -z ${P2P_NODE_BIN:-} ]]; then
        say "building $BUILT_BIN"
        (cd "$ROOT" && cargo build -p p2p-node) >&2 || die "cannot build p2p-node"
    fi
    [[ -x $BUILT_BIN ]] || die "no binary at $BUILT_BIN"
    # Our own copy: a build sharing the target directory may replace the original mid-run.
    mkdir -p "$WORK/bin"
    cp "$BUILT_BIN" "$WORK/bin/p2p-node" || die "cannot copy $BUILT_BIN"
    BIN=$WORK/bin/p2p-node
    help=$("$BIN" run --help 2>&1)
    for flag in --relay-server --bootstrap; do
        grep -q -- "$flag" <<<"$help" ||
            die "$BUILT_BIN has no '$flag' in 'run --help': not a build with issue 15's relay features (try --selftest for the topology alone)"
    done
    # mDNS off: the nodes know only the relay (and nothing would leave our namespaces anyway).
    grep -q -- --no-mdns <<<"$help" && NO_MDNS=(--no-mdns)
fi

# ---- the network ---------------------------------------------------------------------------

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

ns_sysctl() { # ns_sysctl NS KEY VALUE: a sysctl of that namespace (net.* is per namespace)
    in_ns "$1" sh -c "echo $3 >/proc/sys/${2//.//}" || die "cannot set $2 in $1"
}

NETEM=""  # "delay X" when tc netem is in use, else empty
NETEM_NOTE=""

setup_network() {
    local x ns at
    at=$(now_ms)
    for ns in "$PUB_NS" "$RELAY_NS" "${ROUTER_NS[a]}" "${ROUTER_NS[b]}" "${NODE_NS[a]}" "${NODE_NS[b]}"; do
        make_ns "$ns"
        ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
        ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
    done
    # The public bridge, in a namespace of its own. Every veth is created with both
    # ends inside our namespaces: the host's never sees them.
    ip -n "$PUB_NS" link add br0 type bridge || die "cannot create the bridge"
    ip -n "$PUB_NS" link set br0 up
    ip -n "$PUB_NS" link add p-relay type veth peer name eth0 netns "$RELAY_NS" || die "cannot create the relay's veth"
    ip -n "$PUB_NS" link set p-relay master br0 up
    ip -n "$RELAY_NS" link set eth0 address "$RELAY_MAC" up
    ip -n "$RELAY_NS" addr add "$RELAY_IP/24" dev eth0
    for x in a b; do
        ip -n "$PUB_NS" link add "p-r$x" type veth peer name wan0 netns "${ROUTER_NS[$x]}" || die "cannot create router $x's WAN veth"
        ip -n "$PUB_NS" link set "p-r$x" master br0 up
        ip -n "${ROUTER_NS[$x]}" link set wan0 address "${WAN_MAC[$x]}" up
        ip -n "${ROUTER_NS[$x]}" addr add "${WAN_IP[$x]}/24" dev wan0
        ip -n "${ROUTER_NS[$x]}" link add lan0 type veth peer name eth0 netns "${NODE_NS[$x]}" || die "cannot create LAN $x's veth"
        ip -n "${ROUTER_NS[$x]}" link set lan0 address "${LAN_MAC[$x]}" up
        ip -n "${ROUTER_NS[$x]}" addr add "${ROUTER_LAN_IP[$x]}/24" dev lan0
        ip -n "${NODE_NS[$x]}" link set eth0 address "${NODE_MAC[$x]}" up
        ip -n "${NODE_NS[$x]}" addr add "${NODE_IP[$x]}/24" dev eth0
        # The node's only way out is its router; the routers and the relay have no
        # default route at all: nothing here can reach anything beyond 198.51.100.0/24.
        ip -n "${NODE_NS[$x]}" route add default via "${ROUTER_LAN_IP[$x]}"
        ns_sysctl "${ROUTER_NS[$x]}" net.ipv4.ip_forward 1
        # Permanent neighbour entries: the router and its node.
        ip -n "${ROUTER_NS[$x]}" neigh replace "${NODE_IP[$x]}" lladdr "${NODE_MAC[$x]}" dev lan0 nud permanent
        ip -n "${NODE_NS[$x]}" neigh replace "${ROUTER_LAN_IP[$x]}" lladdr "${LAN_MAC[$x]}" dev eth0 nud permanent
    done
    # Permanent neighbour entries on the public side: everyone knows everyone.
    for x in a b; do
        ip -n "$RELAY_NS" neigh replace "${WAN_IP[$x]}" lladdr "${WAN_MAC[$x]}" dev eth0 nud permanent
        ip -n "${ROUTER_NS[$x]}" neigh replace "$RELAY_IP" lladdr "$RELAY_MAC" dev wan0 nud permanent
    done
    ip -n "${ROUTER_NS[a]}" neigh replace "${WAN_IP[b]}" lladdr "${WAN_MAC[b]}" dev wan0 nud permanent
    ip -n "${ROUTER_NS[b]}" neigh replace "${WAN_IP[a]}" lladdr "${WAN_MAC[a]}" dev wan0 nud permanent
    set_nat cone

    # Delay, where the kernel has netem.
    if [[ $NAT_DELAY == 0 || $NAT_DELAY == 0ms ]]; then
        NETEM_NOTE="no delay (NAT_DELAY=0): LAN latency"
    else
        local reason
        if reason=$(in_ns "${ROUTER_NS[a]}" tc qdisc add dev wan0 root netem delay "$NAT_DELAY" 2>&1); then
            in_ns "${ROUTER_NS[b]}" tc qdisc add dev wan0 root netem delay "$NAT_DELAY" || die "cannot add netem in router b"
            NETEM="delay $NAT_DELAY"
            NETEM_NOTE="tc netem delay $NAT_DELAY on each router's WAN side (one way): A-B RTT +$NAT_DELAY x2, node-relay RTT +$NAT_DELAY"
        else
            NETEM_NOTE="NO DELAY: tc netem is not available (${reason:-tc failed}; kernel $(uname -r)$(
                zgrep -q '^# CONFIG_NET_SCH_NETEM is not set' /proc/config.gz 2>/dev/null &&
                    echo ', built without CONFIG_NET_SCH_NETEM')): running at LAN latency"
        fi
    fi
    say "network set up in $(($(now_ms) - at)) ms: relay $RELAY_IP; routers ${WAN_IP[a]} (LAN ${LAN_NET[a]}.0/24), ${WAN_IP[b]} (LAN ${LAN_NET[b]}.0/24)"
    say "$NETEM_NOTE"
}

NAT_MODE=""
INPUT_CHAIN='    chain input {
        type filter hook input priority filter; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" counter drop comment "new from the WAN to the router itself: dropped, never confirmed"
    }'
# `set_nat cone|symmetric|cone-noinput`: both routers' nftables rules (the whole
# ruleset of their namespace is ours). cone-noinput (the self-test only) lacks the
# input chain, to show why it is there.
set_nat() {
    local mode=$1 x masq input
    case $mode in
        cone) masq=masquerade input=$INPUT_CHAIN ;;
        symmetric) masq="masquerade fully-random" input=$INPUT_CHAIN ;;
        cone-noinput) masq=masquerade input="" ;;
        *) die "unknown NAT mode $mode" ;;
    esac
    for x in a b; do
        in_ns "${ROUTER_NS[$x]}" nft -f - <<EOF || die "cannot load the nftables rules ($mode) in router $x"
flush ruleset
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" $masq
    }
}
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        counter comment "new from the WAN to the LAN: dropped"
    }
$input
}
EOF
    done
    NAT_MODE=$mode
}

# `nft_counter ROUTER COMMENT_WORD`: the packets counted by the rule whose comment has that word.
nft_counter() {
    in_ns "${ROUTER_NS[$1]}" nft list ruleset 2>/dev/null |
        awk -v w="$2" 'index($0, w) { for (i = 1; i < NF; i++) if ($i == "packets") { print $(i + 1); exit } }'
}

# ---- the self-test: the topology without p2p-node ---------------------------------------------

probe() { # probe NS ARGS...: one nat-probe.py line, bounded in time
    timeout --kill-after=2 20 ip netns exec "$1" python3 "$PROBE" "${@:2}" 2>&1 | tail -n 1
}

PUNCH_PORT=30000
# `punch_test udp|tcp LABEL WAIT_A_MS`: a hole punch by hand between A and B through the
# routers as they are now, rendezvous on the relay; sets PUNCH_A, PUNCH_B (their lines).
punch_test() {
    local proto=$1 wait_a=$3 secs=4 rv_port
    PUNCH_PORT=$((PUNCH_PORT + 1))
    rv_port=$((3478 + PUNCH_PORT - 30000))
    timeout --kill-after=2 $((secs + 5)) ip netns exec "$RELAY_NS" python3 "$PROBE" "$proto-rendezvous" "$rv_port" $((secs + 3)) \
        >"$WORK/rv$PUNCH_PORT.out" 2>&1 &
    PIDS[rv]=$!
    within 5 grep -q READY "$WORK/rv$PUNCH_PORT.out" || say "the rendezvous server is not ready after 5 s"
    timeout --kill-after=2 $((secs + 5)) ip netns exec "${NODE_NS[a]}" python3 "$PROBE" "$proto-punch" A "$PUNCH_PORT" "$RELAY_IP" "$rv_port" "$secs" "$wait_a" \
        >"$WORK/punch-a$PUNCH_PORT.out" 2>&1 &
    PIDS[punch_a]=$!
    timeout --kill-after=2 $((secs + 5)) ip netns exec "${NODE_NS[b]}" python3 "$PROBE" "$proto-punch" B "$PUNCH_PORT" "$RELAY_IP" "$rv_port" "$secs" 0 \
        >"$WORK/punch-b$PUNCH_PORT.out" 2>&1 &
    PIDS[punch_b]=$!
    wait "${PIDS[punch_a]}" "${PIDS[punch_b]}" 2>/dev/null
    kill "${PIDS[rv]}" 2>/dev/null
    wait "${PIDS[rv]}" 2>/dev/null
    PIDS[punch_a]="" PIDS[punch_b]="" PIDS[rv]=""
    PUNCH_A=$(tail -n 1 "$WORK/punch-a$PUNCH_PORT.out")
    PUNCH_B=$(tail -n 1 "$WORK/punch-b$PUNCH_PORT.out")
    figure "$proto, $2: A: $PUNCH_A"
    figure "$proto, $2: B: $PUNCH_B"
}
observed_port() { sed -n 's/.*observed=[0-9.]*:\([0-9]*\).*/\1/p' <<<"$1"; }

selftest() {
    header "self-test: the topology without p2p-node (nat-probe.py)"
    local x r y line
    set_nat cone
    # Routes: only the nodes have a default route, via their router.
    local leaks=""
    for r in "$PUB_NS" "$RELAY_NS" "${ROUTER_NS[a]}" "${ROUTER_NS[b]}"; do
        [[ -n $(ip -n "$r" route show default) ]] && leaks+=" $r"
    done
    for x in a b; do
        [[ $(ip -n "${NODE_NS[$x]}" route show default) == "default via ${ROUTER_LAN_IP[$x]} dev eth0"* ]] || leaks+=" ${NODE_NS[$x]}"
    done
    check "routes: no default route in the relay, the routers and the bridge; the nodes' only one is their router${leaks:+ (wrong in:$leaks)}" \
        test -z "$leaks"
    line=$(ip -n "${ROUTER_NS[a]}" route get 192.0.2.1 2>&1)
    check "routes: router a has no route beyond the topology (ip route get 192.0.2.1: ${line%%$'\n'*})" \
        grep -q unreachable <<<"$line"

    for x in a b; do
        line=$(probe "${NODE_NS[$x]}" ping "$RELAY_IP" 3)
        check "reach: node $x pings the relay $RELAY_IP through its NAT ($line)" grep -q '^OK' <<<"$line"
    done
    line=$(probe "${NODE_NS[a]}" ping "${NODE_IP[b]}" 2)
    check "isolation: node a cannot ping node b's private ${NODE_IP[b]} ($line)" grep -qv '^OK' <<<"$line"
    line=$(probe "${NODE_NS[b]}" ping "${NODE_IP[a]}" 2)
    check "isolation: node b cannot ping node a's private ${NODE_IP[a]} ($line)" grep -qv '^OK' <<<"$line"
    line=$(probe "$RELAY_NS" ping "${NODE_IP[a]}" 2)
    check "isolation: the relay has no route to node a's private ${NODE_IP[a]} ($line)" grep -qv '^OK' <<<"$line"
    # TCP to b's private address, with a listener there.
    timeout --kill-after=2 6 ip netns exec "${NODE_NS[b]}" python3 "$PROBE" tcp-serve 7000 3 >"$WORK/serve-b.out" 2>&1 &
    PIDS[serve_b]=$!
    sleep 0.3
    line=$(probe "${NODE_NS[a]}" tcp-connect "${NODE_IP[b]}" 7000 2)
    wait "${PIDS[serve_b]}" 2>/dev/null
    PIDS[serve_b]=""
    check "isolation: node a cannot open TCP to node b's private ${NODE_IP[b]}:7000, where b listens ($line)" \
        grep -qv '^CONNECTED' <<<"$line"

    # Masquerade: the relay sees node a as router a's WAN address.
    timeout --kill-after=2 6 ip netns exec "$RELAY_NS" python3 "$PROBE" tcp-serve 7001 3 >"$WORK/serve-relay.out" 2>&1 &
    PIDS[serve_relay]=$!
    sleep 0.3
    line=$(probe "${NODE_NS[a]}" tcp-connect "$RELAY_IP" 7001 2)
    wait "${PIDS[serve_relay]}" 2>/dev/null
    PIDS[serve_relay]=""
    local seen
    seen=$(tail -n 1 "$WORK/serve-relay.out")
    check "masquerade: node a opens TCP to the relay ($line), which sees it as ${WAN_IP[a]} ($seen)" \
        grep -q "^ACCEPTED ${WAN_IP[a]}:" <<<"$seen"
    # The input chain: an unsolicited connection to the router is dropped, not refused.
    line=$(probe "$RELAY_NS" tcp-connect "${WAN_IP[a]}" 22 2)
    check "input chain: an unsolicited TCP SYN from the relay to router a (${WAN_IP[a]}:22) is dropped, no reset ($line)" \
        grep -q '^TIMEOUT' <<<"$line"

    # Hole punching by hand, over UDP and over TCP (simultaneous open from the port of
    # the rendezvous connection).
    local dropped0 dropped1 proto
    for proto in udp tcp; do
        set_nat cone
        punch_test "$proto" "cone, both at once" 0
        check "punch $proto: cone NATs, both punching at once: both sides get through" \
            eval 'grep -q ^PUNCHED <<<"$PUNCH_A" && grep -q ^PUNCHED <<<"$PUNCH_B"'
        check "punch $proto: cone NATs keep the port (endpoint-independent mapping): observed ports $(observed_port "$PUNCH_A"), $(observed_port "$PUNCH_B") = bound $PUNCH_PORT" \
            eval '[[ $(observed_port "$PUNCH_A") == $PUNCH_PORT && $(observed_port "$PUNCH_B") == $PUNCH_PORT ]]'
        dropped0=$(nft_counter a "router itself")
        punch_test "$proto" "cone, B punches 1 s before A" 1000
        dropped1=$(nft_counter a "router itself")
        check "punch $proto: cone NATs, B's packets reach router a 1 s before A sends: both sides still get through (router a's input chain dropped $((dropped1 - dropped0)) early packets)" \
            eval 'grep -q ^PUNCHED <<<"$PUNCH_A" && grep -q ^PUNCHED <<<"$PUNCH_B"'
        set_nat cone-noinput
        punch_test "$proto" "cone without the input chain, B 1 s before A" 1000
        check "punch $proto: the same WITHOUT the input chain fails, as issue 15 says (B's early packets leave a conntrack entry on router a; masquerade moves A's mapping to another port)" \
            eval '! grep -q ^PUNCHED <<<"$PUNCH_A" || ! grep -q ^PUNCHED <<<"$PUNCH_B"'
        set_nat symmetric
        punch_test "$proto" "symmetric (fully-random)" 0
        check "punch $proto: symmetric NATs (masquerade fully-random): nobody gets through" \
            eval '! grep -q ^PUNCHED <<<"$PUNCH_A" && ! grep -q ^PUNCHED <<<"$PUNCH_B"'
        check "punch $proto: symmetric NATs pick random ports: observed $(observed_port "$PUNCH_A"), $(observed_port "$PUNCH_B") for bound $PUNCH_PORT" \
            eval '[[ -n $(observed_port "$PUNCH_A") && $(observed_port "$PUNCH_A") != $PUNCH_PORT && $(observed_port "$PUNCH_B") != $PUNCH_PORT ]]'
    done
    set_nat cone
}

# ---- nodes ---------------------------------------------------------------------------------------

out() { echo "$WORK/$1.out"; }
err() { echo "$WORK/$1.err"; }

# Each stdout line of a node gets the wall clock in ms in front (bash builtins only:
# no fork per line).
stamp() {
    local line t
    while IFS= read -r line; do
        t=${EPOCHREALTIME/[.,]/}
        printf '%d %s\n' $((t / 1000)) "$line"
    done
}

declare -A STARTED_AT=()
# `start_node NAME NS KEY ARGS...`: `p2p-node run` in namespace NS with key file KEY.
start_node() {
    local name=$1 ns=$2 key=$3
    shift 3
    STARTED_AT[$name]=$(now_ms)
    # `ip netns exec` execs the node, so $! is the node itself.
    RUST_LOG=${RUST_LOG:-info} ip netns exec "$ns" "$BIN" run "${NO_MDNS[@]}" --key-file "$key" \
        --message "$name" --interval "$INTERVAL" "$@" \
        9>&- > >(stamp >>"$(out "$name")") 2>>"$(err "$name")" </dev/null &
    PIDS[$name]=$!
}

alive() { [[ -n ${PIDS[$1]:-} ]] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# `stop NAME...`: SIGTERM to all, SIGKILL to those still there after STOP_SECS.
stop() {
    local name pid
    for name in "$@"; do
        [[ -n ${PIDS[$name]:-} ]] && kill -TERM "${PIDS[$name]}" 2>/dev/null
    done
    for name in "$@"; do
        pid=${PIDS[$name]:-}
        [[ -n $pid ]] || continue
        within "$STOP_SECS" eval "! kill -0 $pid 2>/dev/null" || {
            say "$name still running ${STOP_SECS}s after SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        }
        wait "$pid" 2>/dev/null
        PIDS[$name]=""
    done
}

# `first NAME REGEX [FROM_MS]`: the time (ms) of NAME's first stdout line matching
# REGEX (on the line without its stamp), at or after FROM_MS; empty if none.
first() {
    awk -v re="$2" -v from="${3:-0}" '$1 >= from { t = $1; sub(/^[0-9]+ /, ""); if ($0 ~ re) { print t; exit } }' \
        "$(out "$1")" 2>/dev/null
}
line_of() { # like first, the line itself
    awk -v re="$2" -v from="${3:-0}" '$1 >= from { sub(/^[0-9]+ /, ""); if ($0 ~ re) { print; exit } }' \
        "$(out "$1")" 2>/dev/null
}
has() { [[ -n $(first "$@") ]]; }
node_id() { "$BIN" id --key-file "$1" 2>>"$WORK/id.err"; }

# The relay's multiaddr per transport.
relay_addr() {
    case $1 in
        quic) echo "/ip4/$RELAY_IP/udp/$RELAY_PORT/quic-v1/p2p/$RELAY_ID" ;;
        tcp) echo "/ip4/$RELAY_IP/tcp/$RELAY_PORT/p2p/$RELAY_ID" ;;
    esac
}
listen_addr() { # listen_addr a|b quic|tcp PORT
    case $2 in
        quic) echo "/ip4/${NODE_IP[$1]}/udp/$3/quic-v1" ;;
        tcp) echo "/ip4/${NODE_IP[$1]}/tcp/$3" ;;
    esac
}

RELAY_ID=""
RELAY_KEY=$WORK/relay.key
RELAY_RUN=0
# `start_relay [ARGS...]`: the relay, always with the same key and addresses.
RELAY_EXTRA=()
start_relay() {
    RELAY_RUN=$((RELAY_RUN + 1))
    RELAY_EXTRA=("$@")
    start_node "relay$RELAY_RUN" "$RELAY_NS" "$RELAY_KEY" --relay-server \
        --listen "/ip4/$RELAY_IP/udp/$RELAY_PORT/quic-v1" --listen "/ip4/$RELAY_IP/tcp/$RELAY_PORT" "$@"
    RELAY_NAME=relay$RELAY_RUN
    within 10 has "$RELAY_NAME" '^LISTEN ' || die "the relay printed no LISTEN line: $(tail -n 5 "$(err "$RELAY_NAME")")"
}

# ---- the relay and the address checks ----------------------------------------------------------

NAT_NODES=() # every node name that ran behind a NAT, for the EXTERNAL check

relay_warmup() {
    header "the relay, and its external address"
    RELAY_ID=$(node_id "$RELAY_KEY") || die "cannot create the relay's key"
    start_relay
    figure "relay $RELAY_ID on $RELAY_IP, QUIC and TCP port $RELAY_PORT"
    # Two nodes per transport behind the two (cone) NATs: the relay's first peers, from
    # two independent addresses (the routers'), over QUIC and over TCP.
    local x t names=() name port=4500
    for t in quic tcp; do
        for x in a b; do
            port=$((port + 1))
            name=warm-$t-$x
            start_node "$name" "${NODE_NS[$x]}" "$WORK/$name.key" --listen "$(listen_addr "$x" "$t" "$port")" \
                --bootstrap "$(relay_addr "$t")"
            names+=("$name")
            NAT_NODES+=("$name")
        done
    done
    local confirmed_quic confirmed_tcp first_peer
    within 30 eval "has $RELAY_NAME '^EXTERNAL /ip4/$RELAY_IP/udp/$RELAY_PORT/quic-v1' && has $RELAY_NAME '^EXTERNAL /ip4/$RELAY_IP/tcp/$RELAY_PORT'"
    first_peer=$(first "$RELAY_NAME" '^CONNECTED ')
    confirmed_quic=$(first "$RELAY_NAME" "^EXTERNAL /ip4/$RELAY_IP/udp/$RELAY_PORT/quic-v1")
    confirmed_tcp=$(first "$RELAY_NAME" "^EXTERNAL /ip4/$RELAY_IP/tcp/$RELAY_PORT")
    local t0=${STARTED_AT[$RELAY_NAME]}
    figure "relay: first CONNECTED +$(rel "$first_peer" "$t0") ms after its start; EXTERNAL quic +$(rel "$confirmed_quic" "$t0") ms, tcp +$(rel "$confirmed_tcp" "$t0") ms"
    figure "relay: $(grep -c ' EXTERNAL ' "$(out "$RELAY_NAME")") EXTERNAL line(s): $(awk '$2 == "EXTERNAL" { printf "%s ", $3 }' "$(out "$RELAY_NAME")")"
    check "address: the relay confirms $RELAY_IP over QUIC within ${RELAY_CONFIRM_MS} ms of its first peer ($(rel "$confirmed_quic" "$first_peer") ms)" \
        holds 'c != "" && f != "" && c - f <= m' c="$confirmed_quic" f="$first_peer" m="$RELAY_CONFIRM_MS"
    check "address: the relay confirms $RELAY_IP over TCP within ${RELAY_CONFIRM_MS} ms of its first peer ($(rel "$confirmed_tcp" "$first_peer") ms)" \
        holds 'c != "" && f != "" && c - f <= m' c="$confirmed_tcp" f="$first_peer" m="$RELAY_CONFIRM_MS"
    for name in "${names[@]}"; do
        figure "$name: $(grep -c ' RESERVED ' "$(out "$name")") RESERVED, $(awk '$2 == "REACHABILITY" { printf "%s ", $3 }' "$(out "$name")")"
    done
    stop "${names[@]}"
}

rel() { # rel T FROM: T - FROM, or "-" when T is empty
    if [[ -n $1 && -n $2 ]]; then echo $(($1 - $2)); else echo -; fi
}

# ---- trials ------------------------------------------------------------------------------------

TRIAL_PORT=20000
# One line per trial: scenario n, then ms: B's RESERVED from its start, from A's start: A's
# first relayed greeting, the first HOLE_PUNCHED, A's first direct greeting, A's and B's
# HOLE_PUNCH_FAILED ("-": none), then greeted (0/1) and notes.
RESULTS=$WORK/results

# `trial cone|symmetric quic|tcp N`
trial() {
    local kind=$1 t=$2 n=$3 tag a b id_a id_b port t0 deadline secs
    TRIAL_PORT=$((TRIAL_PORT + 1))
    port=$TRIAL_PORT
    tag=$(printf '%s-%s-%02d' "$kind" "$t" "$n")
    a=$tag-a b=$tag-b
    NAT_NODES+=("$a" "$b")
    id_a=$(node_id "$WORK/$a.key") && id_b=$(node_id "$WORK/$b.key") || die "cannot create keys"
    if [[ -n $FRESH_RELAY ]]; then
        # A relay of its own for this trial (same key and address, so an empty DHT),
        # told its address: with no observers yet it would not hand out reservations.
        stop "$RELAY_NAME"
        start_relay --external-addr "/ip4/$RELAY_IP/udp/$RELAY_PORT/quic-v1" --external-addr "/ip4/$RELAY_IP/tcp/$RELAY_PORT"
    fi
    : >"$(out "$a")"
    : >"$(out "$b")"
    start_node "$b" "${NODE_NS[b]}" "$WORK/$b.key" --listen "$(listen_addr b "$t" "$port")" --bootstrap "$(relay_addr "$t")"
    local reserved="" relayed="" punched="" punched_a="" punched_b="" direct="" failed="" failed_b="" greeted="" note=""
    if ! within "$RESERVE_SECS" has "$b" "^RESERVED .*/p2p-circuit"; then
        note="B:no-RESERVED-in-${RESERVE_SECS}s"
        stop "$b"
        echo "$kind-$t $n - - - - - - 0 $note" >>"$RESULTS"
        figure "$tag: B printed no RESERVED within ${RESERVE_SECS}s: $(tail -n 3 "$(out "$b")" | tr '\n' '|')"
        return
    fi
    reserved=$(($(first "$b" "^RESERVED .*/p2p-circuit") - STARTED_AT[$b]))
    start_node "$a" "${NODE_NS[a]}" "$WORK/$a.key" --listen "$(listen_addr a "$t" "$port")" --bootstrap "$(relay_addr "$t")" \
        --peer "/p2p/$id_b"
    t0=${STARTED_AT[$a]}
    if [[ $kind == cone ]]; then secs=$TRIAL_SECS; else secs=$SYM_SECS; fi
    # Done: at A's first direct greeting; or once A greeted over the relay and the punch
    # was reported failed (2 s later, for a retry to show): by A, or in a cone trial by
    # either side (a symmetric trial waits for A's own report, which is what it checks).
    trial_done() {
        has "$a" "^GREETED $id_b .*path=direct" && return 0
        local f
        f=$(first "$a" "^HOLE_PUNCH_FAILED $id_b")
        [[ -z $f && $kind == cone ]] && f=$(first "$b" "^HOLE_PUNCH_FAILED $id_a")
        [[ -n $f ]] && has "$a" "^GREETED $id_b .*path=relayed" && (($(now_ms) >= f + 2000))
    }
    within "$secs" trial_done
    relayed=$(rel "$(first "$a" "^GREETED $id_b .*path=relayed")" "$t0")
    direct=$(rel "$(first "$a" "^GREETED $id_b .*path=direct")" "$t0")
    failed=$(rel "$(first "$a" "^HOLE_PUNCH_FAILED $id_b")" "$t0")
    failed_b=$(rel "$(first "$b" "^HOLE_PUNCH_FAILED $id_a")" "$t0")
    punched_a=$(first "$a" "^HOLE_PUNCHED $id_b")
    punched_b=$(first "$b" "^HOLE_PUNCHED $id_a")
    if [[ -n $punched_a && -n $punched_b ]]; then
        punched=$(rel $((punched_a < punched_b ? punched_a : punched_b)) "$t0")
    else
        punched=$(rel "$punched_a$punched_b" "$t0")
    fi
    greeted=0
    has "$a" "^GREETED $id_b " && greeted=1
    alive "$a" || note+="A:exited "
    alive "$b" || note+="B:exited "
    [[ $kind == symmetric && $direct != - ]] && note+="direct-through-symmetric-NAT "
    local connected
    connected=$(line_of "$a" "^CONNECTED $id_b ")
    figure "$tag: B reserved +${reserved} ms; from A's start: relayed greeting $relayed, punched $punched" \
        "(A:$(rel "$punched_a" "$t0") B:$(rel "$punched_b" "$t0")), direct greeting $direct, punch failed A:$failed B:$failed_b (ms)" \
        "${note:+[${note% }]}"
    if [[ $greeted == 0 || ($kind == cone && $direct == -) ]]; then
        figure "    A's lines: $(cut -d' ' -f2- "$(out "$a")" | grep -v "^GREETED $RELAY_ID" | head -n 12 | cut -c1-160 | tr '\n' '|')"
        # From the node's log (its wording, not a contract): what became of its dials.
        figure "    A's log: $(grep -c 'dial failed' "$(err "$a")") failed dials to $(grep 'dial failed' "$(err "$a")" | grep -o 'PeerId("[^"]*")' | sort -u | wc -l) peers" \
            "($(grep -c "PeerId(\"$id_b\")" <(grep 'dial failed' "$(err "$a")")) to B);" \
            "$(grep -c 'resource limit exceeded' "$(err "$a")") say 'resource limit exceeded', $(grep -c 'has no reservation' "$(err "$a")") 'no reservation for destination'"
    fi
    [[ -n $connected ]] && [[ $n == 1 ]] && figure "    A's first connection to B: ${connected#CONNECTED $id_b }"
    [[ $failed != - ]] && figure "    A: $(line_of "$a" "^HOLE_PUNCH_FAILED $id_b" | cut -c1-200)"
    [[ $failed_b != - && $n == 1 ]] && figure "    B: $(line_of "$b" "^HOLE_PUNCH_FAILED $id_a" | cut -c1-200)"
    # Which transport A's relayed and direct connections to B used (A and B listen on one,
    # but B's RESERVED lists every address of the relay, and A may dial any of them).
    local via_relay via_direct direct_conn
    # A direct connection's address: a public IP, a transport, and no /p2p-circuit (for the
    # DISCONNECTED check below).
    direct_conn="^CONNECTED $id_b /ip4/$PUB_NET[.][0-9]+/(udp/[0-9]+/quic-v1|tcp/[0-9]+)(/p2p/[^/]+)?\$"
    via_relay=$(line_of "$a" "^CONNECTED $id_b .*/p2p-circuit" | awk '{ print ($3 ~ /\/quic-v1\// ? "quic" : $3 ~ /\/tcp\// ? "tcp" : "other") }')
    # The direct one: from the HOLE_PUNCHED line (CONNECTED is printed once per peer).
    via_direct=$({ line_of "$a" "^HOLE_PUNCHED $id_b "; line_of "$b" "^HOLE_PUNCHED $id_a "; } | head -n 1 |
        awk '{ print ($3 ~ /\/quic-v1/ ? "quic" : $3 ~ /\/tcp\// ? "tcp" : "other") }')
    echo "$kind-$t ${via_relay:-none} ${via_direct:-none}" >>"$WORK/paths"
    # A peer that is still there, reported gone (e.g. between the relayed connection's
    # close and the direct one's CONNECTED): counted for the summary.
    has "$a" "^DISCONNECTED $id_b" && echo "$tag $(first "$a" "^DISCONNECTED $id_b") $(first "$a" "$direct_conn")" >>"$WORK/disconnects"
    note=${note% }
    echo "$kind-$t $n $reserved $relayed $punched $direct $failed $failed_b $greeted ${note// /,}" >>"$RESULTS"
    stop "$a" "$b"
}

# `stats SCENARIO COLUMN`: "count median p90" of a column of the results (ms), nearest rank.
stats() {
    awk -v s="$1" -v c="$2" '$1 == s && $c != "-" { print $c }' "$RESULTS" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "0 - -"; exit }
            m = int(0.5 * NR); if (m < 0.5 * NR) m++
            p = int(0.9 * NR); if (p < 0.9 * NR) p++
            print NR, v[m], v[p]
        }'
}
count() { awk -v s="$1" -v c="$2" -v v="$3" '$1 == s && $c == v' "$RESULTS" | wc -l; }
count_within() { awk -v s="$1" -v c="$2" -v m="$3" '$1 == s && $c != "-" && $c <= m' "$RESULTS" | wc -l; }

run_scenario() { # run_scenario cone|symmetric quic|tcp TRIALS
    local kind=$1 t=$2 trials=$3 i at
    header "$kind NAT over $t: $trials trial(s) (${NETEM:-no delay})"
    set_nat "$kind"
    at=$(now_ms)
    local next=0
    for i in $(seq 1 "$trials"); do
        while (($(now_ms) < next)); do sleep 0.1; done
        next=$(($(now_ms) + MIN_TRIAL_MS))
        trial "$kind" "$t" "$i"
    done
    say "$kind over $t took $((($(now_ms) - at) / 1000)) s"
    SCENARIOS+=("$kind-$t:$trials")
}

# ---- relay restart ---------------------------------------------------------------------------

relay_restart() {
    local t=quic port b c a id_a id_b mark restart_at
    header "relay restart (SIG$RELAY_KILL_SIGNAL, same key and address), cone NATs, $t"
    set_nat cone
    TRIAL_PORT=$((TRIAL_PORT + 1))
    port=$TRIAL_PORT
    a=restart-a b=restart-b c=restart-c
    NAT_NODES+=("$a" "$b" "$c")
    id_a=$(node_id "$WORK/$a.key") && id_b=$(node_id "$WORK/$b.key") && node_id "$WORK/$c.key" >/dev/null || die "cannot create keys"
    start_node "$b" "${NODE_NS[b]}" "$WORK/$b.key" --listen "$(listen_addr b $t "$port")" --bootstrap "$(relay_addr $t)"
    if ! within "$RESERVE_SECS" has "$b" "^RESERVED .*/p2p-circuit"; then
        fail "restart: B printed no RESERVED within ${RESERVE_SECS}s before the restart"
        stop "$b"
        return
    fi
    start_node "$a" "${NODE_NS[a]}" "$WORK/$a.key" --listen "$(listen_addr a $t "$port")" --bootstrap "$(relay_addr $t)" \
        --peer "/p2p/$id_b"
    within "$TRIAL_SECS" has "$a" "^GREETED $id_b " || figure "A did not greet B before the restart"
    sleep 1
    # The restart.
    local old=$RELAY_NAME killed_at
    killed_at=$(now_ms)
    # Started again the way an operator runs a relay: with its address given. Left to its
    # observers, a restarted relay has one per transport here (A over QUIC, B over TCP) and
    # confirms nothing (an address needs two independent observers), so it refuses every
    # reservation ("Failed to get Reservation."). The first relay's own confirmation by
    # its observers is checked above.
    local extra=(--external-addr "/ip4/$RELAY_IP/udp/$RELAY_PORT/quic-v1" --external-addr "/ip4/$RELAY_IP/tcp/$RELAY_PORT")
    kill "-$RELAY_KILL_SIGNAL" "${PIDS[$old]}" 2>/dev/null
    within "$STOP_SECS" eval "! kill -0 ${PIDS[$old]} 2>/dev/null" || kill -KILL "${PIDS[$old]}" 2>/dev/null
    wait "${PIDS[$old]}" 2>/dev/null
    PIDS[$old]=""
    figure "relay: SIG$RELAY_KILL_SIGNAL, gone after $(($(now_ms) - killed_at)) ms, started again${extra[*]:+ with ${extra[*]}}"
    start_relay "${extra[@]}"
    restart_at=${STARTED_AT[$RELAY_NAME]}
    local relay_id
    relay_id=$(line_of "$RELAY_NAME" '^LISTEN .*/p2p/' | sed 's|.*/p2p/||')
    check "restart: the relay restarted with its key file has the same PeerId ($relay_id)" test "$relay_id" == "$RELAY_ID"
    # B re-reserves; a fresh node C (A's namespace, another port) greets B by PeerId once it has.
    within $((RESTART_MS / 1000 + 10)) has "$b" "^RESERVED .*/p2p-circuit" "$restart_at"
    local reserved
    reserved=$(first "$b" "^RESERVED .*/p2p-circuit" "$restart_at")
    check "restart: B prints RESERVED again within ${RESTART_MS} ms of the relay's restart ($(rel "$reserved" "$restart_at") ms; relay down for $((restart_at - killed_at)) ms)" \
        holds 'r != "" && r - s <= m' r="$reserved" s="$restart_at" m="$RESTART_MS"
    start_node "$c" "${NODE_NS[a]}" "$WORK/$c.key" --listen "$(listen_addr a $t $((port + 500)))" --bootstrap "$(relay_addr $t)" \
        --peer "/p2p/$id_b"
    within $((RESTART_MS / 1000 + 10)) has "$c" "^GREETED $id_b "
    local greeted
    greeted=$(first "$c" "^GREETED $id_b ")
    figure "C (fresh key, started $((STARTED_AT[$c] - restart_at)) ms after the restart): $(line_of "$c" "^GREETED $id_b " | cut -c1-160)"
    check "restart: a fresh node greets B by PeerId within ${RESTART_MS} ms of the relay's restart ($(rel "$greeted" "$restart_at") ms)" \
        holds 'g != "" && g - s <= m' g="$greeted" s="$restart_at" m="$RESTART_MS"
    figure "A (connected to B before the restart) greeted B $(awk -v s="$restart_at" -v p="$id_b" '$1 >= s && $2 == "GREETED" && $3 == p' "$(out "$a")" | wc -l) times since," \
        "$(awk -v s="$restart_at" -v p="$id_b" '$1 >= s && $2 == "GREET_FAILED" && $3 == p' "$(out "$a")" | wc -l) failed"
    stop "$a" "$b" "$c"
}

# ---- the address checks at the end ---------------------------------------------------------

address_checks() {
    header "addresses of the nodes behind NAT"
    local name private="" other="" reach_private=0 reach_public=0 n=0
    for name in "${NAT_NODES[@]}"; do
        [[ -f $(out "$name") ]] || continue
        n=$((n + 1))
        private+=$(awk -v n="$name" '$2 == "EXTERNAL" && $3 ~ /^\/ip4\/10\./ { printf " %s:%s", n, $3 }' "$(out "$name")")
        other+=$(awk -v n="$name" '$2 == "EXTERNAL" && $3 !~ /^\/ip4\/10\./ { printf " %s:%s", n, $3 }' "$(out "$name")")
        grep -q ' REACHABILITY private' "$(out "$name")" && reach_private=$((reach_private + 1))
        grep -q ' REACHABILITY public' "$(out "$name")" && reach_public=$((reach_public + 1))
    done
    figure "$n nodes ran behind NAT: $reach_private printed REACHABILITY private, $reach_public REACHABILITY public"
    [[ -n $other ]] && figure "EXTERNAL lines of nodes behind NAT (not private, but a NAT mapping cannot be dialled unsolicited):$(cut -c1-600 <<<"$other")"
    check "address: no node behind NAT printed EXTERNAL with its private 10.x address${private:+:$(cut -c1-400 <<<"$private")}" \
        test -z "$private"
}

# ---- summary --------------------------------------------------------------------------------------

SCENARIOS=()
summary() {
    header "summary (ms from A's start; median / p90 over the trials that got there)"
    printf '  %-16s %6s %8s %7s %7s %6s %8s %8s %14s %14s %14s %14s %14s\n' scenario trials reserved greeted punched direct \
        failed-A failed-B relayed-greet hole-punched direct-greet punch-fail-A punch-fail-B
    local entry s trials col st
    for entry in "${SCENARIOS[@]}"; do
        s=${entry%%:*}
        trials=${entry##*:}
        local cols=()
        for col in 4 5 6 7 8; do
            read -r -a st < <(stats "$s" "$col")
            cols+=("${st[1]}/${st[2]}")
        done
        printf '  %-16s %6d %8d %7d %7d %6d %8d %8d %14s %14s %14s %14s %14s\n' "$s" "$trials" \
            $((trials - $(count "$s" 3 -))) "$(count "$s" 9 1)" $((trials - $(count "$s" 5 -))) \
            $((trials - $(count "$s" 6 -))) $((trials - $(count "$s" 7 -))) $((trials - $(count "$s" 8 -))) "${cols[@]}"
    done
    echo
    for entry in "${SCENARIOS[@]}"; do
        s=${entry%%:*}
        trials=${entry##*:}
        local greeted direct med sym_failed relayed
        greeted=$(count "$s" 9 1)
        case $s in
            cone-*)
                direct=$((trials - $(count "$s" 6 -)))
                read -r _ med _ < <(stats "$s" 6)
                check "$s: every trial greets ($greeted of $trials)" test "$greeted" -eq "$trials"
                check "$s: >= ${DIRECT_SHARE} % go direct ($direct of $trials)" holds 'd * 100 >= p * n' d="$direct" p="$DIRECT_SHARE" n="$trials"
                if ((trials >= 5)); then
                    check "$s: median from A's start to its first direct greeting <= ${DIRECT_MEDIAN_MS} ms ($med ms)" \
                        holds 'm != "-" && m <= t' m="$med" t="$DIRECT_MEDIAN_MS"
                else
                    # One trial (--short) has no median: the target is checked by the full run.
                    figure "$s: A's start to its first direct greeting: $med ms (target: median <= ${DIRECT_MEDIAN_MS} ms over the full run's trials)"
                fi
                ;;
            symmetric-*)
                relayed=$((trials - $(count "$s" 4 -)))
                sym_failed=$(count_within "$s" 7 "$SYM_FAIL_MS")
                check "$s: every trial greets over the relay ($relayed of $trials)" test "$relayed" -eq "$trials"
                check "$s: A prints HOLE_PUNCH_FAILED within $((SYM_FAIL_MS / 1000)) s of its start in every trial ($sym_failed of $trials)" \
                    test "$sym_failed" -eq "$trials"
                figure "$s: either side printed HOLE_PUNCH_FAILED within $((SYM_FAIL_MS / 1000)) s of A's start in $(awk -v s="$s" -v m="$SYM_FAIL_MS" '$1 == s && (($7 != "-" && $7 <= m) || ($8 != "-" && $8 <= m))' "$RESULTS" | wc -l) of $trials trials (B, which holds the inbound relayed connection, drives DCUtR)"
                # Not a target of the issue: a sanity check of the test itself.
                direct=$((trials - $(count "$s" 6 -)))
                check "$s: no trial went direct through two symmetric NATs ($direct of $trials did)" test "$direct" -eq 0
                ;;
        esac
    done
    for entry in "${SCENARIOS[@]}"; do
        s=${entry%%:*}
        figure "$s: A's relayed connection to B over the relay's $(awk -v s="$s" '$1 == s { n[$2]++ } END { for (k in n) printf "%s x%d ", k, n[k] }' "$WORK/paths")address;" \
            "the punched one $(awk -v s="$s" '$1 == s { n[$3]++ } END { for (k in n) printf "%s x%d ", k, n[k] }' "$WORK/paths")"
    done
    [[ -s $WORK/disconnects ]] && figure "A printed DISCONNECTED B while both ran in $(wc -l <"$WORK/disconnects") trial(s)" \
        "(DISCONNECTED then direct CONNECTED, ms apart: $(awk '$3 != "" { printf "%s:%d ", $1, $3 - $2 }' "$WORK/disconnects" | cut -c1-300))"
    local notes
    notes=$(awk '$10 != "" { print "    " $1 " #" $2 ": " $10 }' "$RESULTS")
    [[ -n $notes ]] && { figure "notes:"; echo "$notes"; }
}

# ---- run ---------------------------------------------------------------------------------------------

RUN_AT=$(now_ms)
setup_network
if [[ $MODE == selftest ]]; then
    selftest
    say "took $((($(now_ms) - RUN_AT) / 1000)) s"
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
    exit
fi
[[ $MODE == full ]] && selftest
: >"$RESULTS"
relay_warmup
for t in $TRANSPORTS; do
    ((CONE_TRIALS > 0)) && run_scenario cone "$t" "$CONE_TRIALS"
done
for t in $TRANSPORTS; do
    ((SYM_TRIALS > 0)) && run_scenario symmetric "$t" "$SYM_TRIALS"
done
[[ $MODE == full ]] && relay_restart
address_checks
summary
figure "$NETEM_NOTE; nodes' --interval $INTERVAL; ${FRESH_RELAY:+a fresh relay per trial (FRESH_RELAY=1); }binary $BUILT_BIN"
say "took $((($(now_ms) - RUN_AT) / 1000)) s"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
