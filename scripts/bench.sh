#!/usr/bin/env bash
# p2p-node against the raw libp2p baseline, on 127.0.0.1, with `p2p-node bench`.
#
#   scripts/bench.sh           # the comparison table (about 5 minutes)
#   scripts/bench.sh --scale [N]  # N identities (default 1,000) hold a connection to one node for 30 s
#
# Table: starts the raw baseline (crates/p2p-transport/examples/raw_baseline.rs,
# plain request_response answering inside its swarm loop) and a p2p-node with
# the default stack but its policy limits off (--rate-per-sec 0
# --max-in-flight-per-peer 0 --max-in-flight-total 0, and no connection caps or
# bans), so the run measures the
# stack's cost, not its policy. Benches each over QUIC and TCP at c=1 and c=64
# on one connection and at c=256 over 16 connections: the raw baseline and
# p2p-node on greet 1.0.0 (the same protocol), and p2p-node on greet 2.0.0
# (pipelined). The servers take turns, ROUNDS times per row; the median round
# (by req/s) is shown with the ratio p2p-node/raw. The machine is small, shared
# and noisy: only ratios within one run compare.
#
# Scale: a p2p-node with the default limits (but for its connection caps,
# raised to fit N) and N client identities (split over SCALE_PROCS bench
# processes), each greeting SCALE_RATE times per second for SCALE_SECS; prints the node's
# peak RSS (VmHWM) and the share of greetings answered. N is the argument of
# --scale, else SCALE_CONNECTIONS; SCALE_PROCS defaults to one bench process
# per 2,000 identities. Raises `ulimit -n` to the hard limit (up to 65536).
#
# Each row also shows the server's CPU time per answered request (user +
# system from /proc/<pid>/stat over the measured window, `bench --server-pid`)
# and its ratio to raw's: a cost that does not depend on how fast the client
# is. The client runs on cpu 0 and the servers on cpu 1 (PIN=0: unpinned).
#
# Env: ROUNDS (3), SECS (3, measured seconds per run), WARMUP (1), PIN (1),
#      NETS ("quic tcp") and LOADS ("1:1 64:1 256:16", c:K pairs) for a shorter table,
#      SCALE_CONNECTIONS (1000), SCALE_SECS (30), SCALE_PROCS (N / 2000, at least 1),
#      SCALE_RATE (1: greetings per second per identity, paced; 0.2 is one every 5 s),
#      SCALE_NODE_ARGS (extra `p2p-node run` flags for the scale node), SCALE_RMEM
#      (net.core.rmem_default during a scale run, 16 MiB; restored on exit; 0 leaves it),
#      KEEP=1 keeps the work dir,
#      P2P_NODE_BIN / RAW_BIN to use prebuilt binaries instead of building them
#      (built ones are taken from $CARGO_TARGET_DIR when it is set).
# Needs jq. Every node listens on 127.0.0.1 only, with mDNS off; every process
# started here is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=table
case ${1:-} in
    '') ;;
    --scale)
        MODE=scale
        if [[ -n ${2:-} ]]; then
            [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [--scale [N]]" >&2; exit 2; }
            SCALE_CONNECTIONS=$2
        fi
        ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--scale [N]]" >&2; exit 2 ;;
esac
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
NETS=${NETS:-quic tcp}
LOADS=${LOADS:-1:1 64:1 256:16}
WARMUP=${WARMUP:-1}
SCALE_CONNECTIONS=${SCALE_CONNECTIONS:-1000}
SCALE_SECS=${SCALE_SECS:-30}
SCALE_PROCS=${SCALE_PROCS:-$(((SCALE_CONNECTIONS + 1999) / 2000))}
SCALE_NODE_ARGS=${SCALE_NODE_ARGS:-}
SCALE_RMEM=${SCALE_RMEM:-16777216}
SCALE_RATE=${SCALE_RATE:-1}

say() { printf '# %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 2; }
command -v jq >/dev/null || die "needs jq"

# ---- processes: every one started here is stopped by PID on exit ------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2pbench.XXXXXX")
PIDS=()

stop() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

RMEM_SAVED=
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop "$pid"; done
    if [[ -n $RMEM_SAVED ]]; then
        echo "$RMEM_SAVED" >/proc/sys/net/core/rmem_default && say "net.core.rmem_default restored to $RMEM_SAVED"
    fi
    if [[ -n ${KEEP:-} ]]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background (stdout to $WORK/NAME.out), records its PID in $LAST_PID.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# listen_addr NAME PID TRANSPORT: the LISTEN address of that transport, once printed.
listen_addr() {
    local name=$1 pid=$2 transport=$3 line i
    for ((i = 0; i < 300; i++)); do
        if line=$(grep -m1 "^LISTEN .*/$transport/" "$WORK/$name.out" 2>/dev/null); then
            echo "${line#LISTEN }"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/$name.err" >&2
    die "$name printed no LISTEN line for $transport"
}

# ---- binaries -----------------------------------------------------------------

BIN=${P2P_NODE_BIN:-}
RAW=${RAW_BIN:-}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -z $BIN ]]; then
    say "cargo build --release -p p2p-node"
    cargo build --release -q -p p2p-node
    BIN=$TARGET/release/p2p-node
fi
if [[ -z $RAW && $MODE == table ]]; then
    say "cargo build --release -p p2p-transport --example raw_baseline"
    cargo build --release -q -p p2p-transport --example raw_baseline
    RAW=$TARGET/release/examples/raw_baseline
fi

# The load client on one core, the servers on the other (PIN=0: no pinning),
# so that the servers' CPU per request is not the client's contention.
PIN=${PIN:-1}
SERVER_CPU= CLIENT_CPU= PIN_NOTE=
if [[ $PIN == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
    SERVER_CPU="taskset -c 1" CLIENT_CPU="taskset -c 0"
    PIN_NOTE=" Pinned: servers on cpu 1, the load client on cpu 0."
fi

LOCAL_QUIC=/ip4/127.0.0.1/udp/0/quic-v1
LOCAL_TCP=/ip4/127.0.0.1/tcp/0

machine() {
    date
    echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- the table ----------------------------------------------------------------

table() {
    machine
    # shellcheck disable=SC2086 # (empty, or the taskset words)
    start raw $SERVER_CPU "$RAW" "$LOCAL_QUIC" "$LOCAL_TCP"
    local raw_pid=$LAST_PID
    # The same baseline with libp2p's timer thread at idle priority, as the
    # node's binary runs it by default (p2p_transport::idle_timer_thread):
    # the like-for-like comparison for the node's own code.
    # shellcheck disable=SC2086
    start rawidle $SERVER_CPU env RAW_IDLE_TIMER=1 "$RAW" "$LOCAL_QUIC" "$LOCAL_TCP"
    local rawidle_pid=$LAST_PID
    # shellcheck disable=SC2086
    start node $SERVER_CPU "$BIN" run --no-mdns --listen "$LOCAL_QUIC" --listen "$LOCAL_TCP" \
        --key-file "$WORK/node.key" --rate-per-sec 0 --max-in-flight-per-peer 0 --max-in-flight-total 0 \
        --max-incoming-per-ip 0 --max-incoming 0 --ban-threshold 0
    local node_pid=$LAST_PID
    declare -A addr
    addr[raw_quic]=$(listen_addr raw "$raw_pid" quic-v1)
    addr[raw_tcp]=$(listen_addr raw "$raw_pid" tcp)
    addr[rawidle_quic]=$(listen_addr rawidle "$rawidle_pid" quic-v1)
    addr[rawidle_tcp]=$(listen_addr rawidle "$rawidle_pid" tcp)
    addr[node_quic]=$(listen_addr node "$node_pid" quic-v1)
    addr[node_tcp]=$(listen_addr node "$node_pid" tcp)

    local results=$WORK/results.tsv net load c k round server target protocol pid line
    : >"$results"
    for net in $NETS; do
        for load in $LOADS; do
            IFS=: read -r c k <<<"$load"
            for ((round = 1; round <= ROUNDS; round++)); do
                for server in raw rawidle v1 v2; do
                    case $server in
                        raw) target=${addr[raw_$net]} protocol=v1 pid=$raw_pid ;;
                        rawidle) target=${addr[rawidle_$net]} protocol=v1 pid=$rawidle_pid ;;
                        v1) target=${addr[node_$net]} protocol=v1 pid=$node_pid ;;
                        v2) target=${addr[node_$net]} protocol=v2 pid=$node_pid ;;
                    esac
                    rm -f "$WORK/run.json"
                    if ! $CLIENT_CPU "$BIN" bench "$target" --concurrency "$c" --connections "$k" --protocol "$protocol" \
                        --duration "${SECS}s" --warmup "${WARMUP}s" --json --no-progress --server-pid "$pid" \
                        >"$WORK/run.json" 2>"$WORK/run.err"; then
                        say "$net c=$c k=$k $server round $round: $(tail -n1 "$WORK/run.err")"
                    fi
                    line=$(jq -r '[.requests_per_sec, .latency_us.p50, .latency_us.p99, .failed, (.server_cpu_us_per_req // 0)] | @tsv' \
                        "$WORK/run.json" 2>/dev/null) || line=
                    [[ -n $line ]] || line=$'0\t0\t0\t0\t0'
                    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$net" "$c" "$k" "$server" "$round" "$line" >>"$results"
                    say "$net c=$c k=$k $server round $round/$ROUNDS: $(cut -f1 <<<"$line" | cut -d. -f1) req/s, $(cut -f5 <<<"$line" | cut -d. -f1) µs cpu/req"
                done
            done
        done
    done

    echo
    echo "p2p-node vs raw libp2p request_response on 127.0.0.1: $ROUNDS rounds of ${SECS}s (after ${WARMUP}s warm-up)"
    echo "per row, servers taking turns; the median round by req/s. v1 = greet 1.0.0 (as raw), v2 = greet 2.0.0."
    echo "cpu/req: the server's user+system CPU over the measured window / requests answered (/proc/<pid>/stat);"
    echo "cpu/raw: that, over raw's in the same row group (for v2: over raw v1's).${PIN_NOTE}"
    echo "raw idle-tmr: raw with libp2p's timer thread at idle priority, as p2p-node runs by default."
    # Median round per (net, c, k, server), in table order (quic < tcp, raw < rawidle < v1 < v2).
    sort -t $'\t' -k1,1 -k2,2n -k3,3n -k4,4 -k6,6g "$results" | awk -F '\t' '
        { key = $1 FS $2 FS $3 FS $4; if (!(key in n)) order[++keys] = key; row[key, ++n[key]] = $0 }
        END { for (i = 1; i <= keys; i++) print row[order[i], int(n[order[i]] / 2) + 1] }' |
        awk -F '\t' '
        function name(s) { return s == "raw" ? "raw" : s == "rawidle" ? "raw idle-tmr" : "p2p-node " s }
        BEGIN {
            printf "%-5s %4s %3s  %-12s %9s %9s %9s %7s %8s %10s %8s %8s %8s\n",
                "net", "c", "K", "server", "req/s", "p50 ms", "p99 ms", "failed", "cpu/req", "req/s/raw", "p50/raw", "p99/raw", "cpu/raw"
        }
        {
            net = $1; c = $2; k = $3; s = $4; rps = $6; p50 = $7; p99 = $8; failed = $9; cpu = $10
            g = net " " c " " k
            ratios = ""
            if (s == "raw") { raw_rps[g] = rps; raw_p50[g] = p50; raw_p99[g] = p99; raw_cpu[g] = cpu }
            else if (g in raw_rps && raw_rps[g] > 0 && raw_p50[g] > 0) {
                r_rps[g, s] = rps / raw_rps[g]; r_p50[g, s] = p50 / raw_p50[g]
                r_cpu[g, s] = raw_cpu[g] > 0 ? cpu / raw_cpu[g] : 0
                ratios = sprintf("%9.2fx %7.2fx %7.2fx %7.3fx", r_rps[g, s], r_p50[g, s], p99 / raw_p99[g], r_cpu[g, s])
            }
            printf "%-5s %4d %3d  %-12s %9.0f %9.3f %9.3f %7d %5.1f µs %s\n", net, c, k, name(s), rps, p50 / 1000, p99 / 1000, failed, cpu, ratios
        }
        # The same cpu/req over raw idle-tmr (same timer thread): no target, the honest view.
        function like(net, s,   g, r) {
            g = net " 64 1"; r = r_cpu[g, "rawidle"] > 0 ? r_cpu[g, s] / r_cpu[g, "rawidle"] : 0
            printf "  %-48s %6.3fx  (like for like, no target)\n", net " c=64: p2p-node " s " cpu/req / raw idle-tmr", r
        }
        function check(what, ratio, op, bound,   met) {
            met = (op == ">=") ? ratio >= bound : ratio <= bound
            printf "  %-48s %6.2fx  %s\n", what " " op " " bound "x raw", ratio, met ? "met" : "MISSED"
        }
        END {
            print ""
            print "targets (this run):"
            check("quic c=64: p2p-node v1 cpu/req", r_cpu["quic 64 1", "v1"], "<=", 1.0)
            check("tcp  c=64: p2p-node v1 cpu/req", r_cpu["tcp 64 1", "v1"], "<=", 1.0)
            check("quic c=64: p2p-node v2 cpu/req", r_cpu["quic 64 1", "v2"], "<=", 0.067)
            check("tcp  c=64: p2p-node v2 cpu/req", r_cpu["tcp 64 1", "v2"], "<=", 0.067)
            like("quic", "v1"); like("tcp", "v1"); like("quic", "v2"); like("tcp", "v2")
            check("quic c=64: p2p-node v1 req/s", r_rps["quic 64 1", "v1"], ">=", 1.0)
            check("tcp  c=64: p2p-node v1 req/s", r_rps["tcp 64 1", "v1"], ">=", 1.0)
            check("quic c=1:  p2p-node v1 p50", r_p50["quic 1 1", "v1"], "<=", 0.9)
            check("tcp  c=1:  p2p-node v1 p50", r_p50["tcp 1 1", "v1"], "<=", 0.9)
            check("quic c=64: p2p-node v2 req/s", r_rps["quic 64 1", "v2"], ">=", 15)
            check("tcp  c=64: p2p-node v2 req/s", r_rps["tcp 64 1", "v2"], ">=", 15)
            check("quic c=1:  p2p-node v2 p50", r_p50["quic 1 1", "v2"], "<=", 0.4)
            check("tcp  c=1:  p2p-node v2 p50", r_p50["tcp 1 1", "v2"], "<=", 0.4)
        }'
}

# ---- scale --------------------------------------------------------------------

status_kb() { # pid field: a /proc/<pid>/status field in kB, or 0
    local key value rest
    {
        while read -r key value rest; do
            if [[ $key == "$2:" ]]; then
                echo "$value"
                return 0
            fi
        done
    } 2>/dev/null <"/proc/$1/status" || true
    echo 0
}

cpu_ticks() { # pid: user + system clock ticks so far, or 0
    local stat f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return 0; }
    stat=${stat##*) }
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}

udp_rcvbuf_errors() { # datagrams the kernel dropped for a full socket receive buffer, system-wide
    awk '/^Udp:/ { if (!n++) { for (i = 1; i <= NF; i++) col[$i] = i } else { print $col["RcvbufErrors"] } }' /proc/net/snmp
}

connected_peers() { # peers of the node: CONNECTED lines minus DISCONNECTED lines
    local up down
    up=$(grep -c '^CONNECTED ' "$WORK/node.out" || true)
    down=$(grep -c '^DISCONNECTED ' "$WORK/node.out" || true)
    echo $((up - down))
}

scale() {
    local n=$SCALE_CONNECTIONS procs=$SCALE_PROCS warmup=5 hard
    ((procs >= 1 && procs <= n)) || die "SCALE_PROCS ($procs) must be between 1 and $n"
    # Bench process i holds per[i] identities (the remainder spread over the first ones).
    local per=() i
    for ((i = 0; i < procs; i++)); do per+=($((n / procs + (i < n % procs ? 1 : 0)))); done
    # Each client node has a UDP socket and a few descriptors of its own; the
    # node needs few (QUIC: one UDP socket for all its connections).
    hard=$(ulimit -Hn)
    if [[ $hard == unlimited ]] || ((hard > 65536)); then hard=65536; fi
    ulimit -n "$hard"
    ((hard >= 2 * per[0] + 256)) || die "ulimit -n is $hard: too low for ${per[0]} client nodes per process (raise SCALE_PROCS)"
    # Several processes connect at once (32 handshakes each): a longer warm-up
    # lets the last of them finish connecting before any measures.
    ((procs > 1)) && warmup=15
    machine
    say "ulimit -n $(ulimit -n)"
    # The node's one UDP socket takes every client's datagrams; at the
    # kernel's default receive buffer (208 KiB here) thousands of peers
    # overflow it, and the drops come back as retransmissions and lost
    # connections. libp2p-quic sets no SO_RCVBUF, so the default for new
    # sockets is raised for the run (and restored on exit).
    local rmem
    rmem=$(cat /proc/sys/net/core/rmem_default)
    if ((SCALE_RMEM > rmem)); then
        if echo "$SCALE_RMEM" 2>/dev/null >/proc/sys/net/core/rmem_default; then
            RMEM_SAVED=$rmem
            say "net.core.rmem_default $rmem -> $SCALE_RMEM for the run"
        else
            say "cannot raise net.core.rmem_default ($rmem; needs root): expect UDP drops at thousands of peers"
        fi
    fi

    # The default stack and limits, but for mDNS off and 127.0.0.1, the
    # per-IP inbound cap lifted (every client identity here comes from
    # 127.0.0.1) and the connection caps raised to fit n: inbound and total
    # (the default 1,024 and 2,048), and in the handshake (the default 128;
    # each bench process has up to 32 handshakes in flight).
    # shellcheck disable=SC2086 # SCALE_NODE_ARGS is a list of flags
    start node "$BIN" run --no-mdns --listen "$LOCAL_QUIC" --key-file "$WORK/node.key" \
        --max-incoming-per-ip 0 --max-incoming "$((n + 16))" --max-connections "$((n + 1024))" \
        --max-pending-incoming "$((procs * 32 + 128))" $SCALE_NODE_ARGS
    local node_pid=$LAST_PID target
    target=$(listen_addr node "$node_pid" quic-v1)
    local rss0
    rss0=$(status_kb "$node_pid" VmRSS)
    local cpu0 drops0
    cpu0=$(cpu_ticks "$node_pid")
    drops0=$(udp_rcvbuf_errors)

    local benches=()
    for ((i = 0; i < procs; i++)); do
        start "bench$i" "$BIN" bench "$target" --connections "${per[i]}" --concurrency "${per[i]}" \
            --rate "$(awk -v k="${per[i]}" -v r="$SCALE_RATE" 'BEGIN { print k * r }')" \
            --duration "${SCALE_SECS}s" --warmup "${warmup}s" --connect-timeout 120s --json --no-progress
        benches+=("$LAST_PID")
    done
    say "$procs bench process(es) of ${per[0]} identities each: connecting, ${warmup}s warm-up, ${SCALE_SECS}s measured"

    # Sample once a second until the benches end.
    local peak_peers=0 peers bench_rss=0 rss running t=0
    while :; do
        running=0
        for i in "${benches[@]}"; do
            if kill -0 "$i" 2>/dev/null; then
                running=1
                rss=$(status_kb "$i" VmRSS)
                ((rss > bench_rss)) && bench_rss=$rss
            fi
        done
        ((running)) || break
        peers=$(connected_peers)
        ((peers > peak_peers)) && peak_peers=$peers
        if ((t % 5 == 0)); then
            say "t=${t}s node: $peers peers, VmRSS $(($(status_kb "$node_pid" VmRSS) / 1024)) MB"
        fi
        sleep 1
        t=$((t + 1))
    done
    local failed_procs=0
    for i in "${benches[@]}"; do wait "$i" || failed_procs=$((failed_procs + 1)); done
    local hwm cpu drops
    hwm=$(status_kb "$node_pid" VmHWM)
    drops=$(($(udp_rcvbuf_errors) - drops0))
    local load_end
    load_end=$(cut -d' ' -f1-3 /proc/loadavg)
    cpu=$(( ($(cpu_ticks "$node_pid") - cpu0) * 1000 / $(getconf CLK_TCK) ))
    # The RSS target: 200 MB up to 1,000 connections (issue 5), 1 GiB for 10,000 (issue 16), pro rata beyond.
    local rss_target_mb=$((n * 1024 / 10000 > 200 ? n * 1024 / 10000 : 200))

    local all=$WORK/scale.json
    for ((i = 0; i < procs; i++)); do cat "$WORK/bench$i.out"; done | jq -s '.' >"$all"
    local scheduled
    scheduled=$(awk -v n="$n" -v s="$SCALE_SECS" -v r="$SCALE_RATE" 'BEGIN { printf "%d", n * s * r }')
    echo
    echo "scale: $n identities (${procs} bench process(es) x ${per[0]}), each greeting ${SCALE_RATE}/s for ${SCALE_SECS}s ($(awk -v n="$n" -v r="$SCALE_RATE" 'BEGIN { print n * r }') req/s in all), QUIC on 127.0.0.1"
    echo "(load average at the end: $load_end)"
    jq -r --argjson scheduled "$scheduled" --argjson hwm "$hwm" --argjson rss0 "$rss0" \
        --argjson peak "$peak_peers" --argjson bench_rss "$bench_rss" --argjson failed_procs "$failed_procs" \
        --argjson rss_target "$rss_target_mb" --argjson cpu_ms "$cpu" --argjson n "$n" --argjson drops "$drops" '
        (map(.ok) | add) as $ok | (map(.failed) | add) as $failed | (map(.connected) | add) as $connected
        | ([.[].errors | to_entries[]] | group_by(.key) | map("\(.[0].key): \(map(.value) | add)") | join(", ")) as $errors
        | "connected            \($connected)/\(map(.connections) | add) (peak peers seen by the node: \($peak))",
          "greetings            \($ok) answered, \($failed) failed, \($scheduled) scheduled",
          "answered             \(if $ok + $failed > 0 then ($ok * 100000 / ($ok + $failed) | floor) / 1000 else 0 end) % of sent, \(([$ok, $scheduled] | min) * 100000 / $scheduled | floor | . / 1000) % of scheduled",
          "errors               \(if $errors == "" then "none" else $errors end)",
          "latency              p50 \(map(.latency_us.p50) | max) us, p99 \(map(.latency_us.p99) | max) us (worst process)",
          "node peak RSS        \($hwm / 1024 | floor) MB (VmHWM; \($rss0 / 1024 | floor) MB before the clients came)",
          "node CPU             \($cpu_ms / 1000) s from start to the end of the benches",
          "UDP drops            \($drops) datagrams dropped on full socket buffers (RcvbufErrors, whole machine)",
          "bench peak RSS       \($bench_rss / 1024 | floor) MB per process",
          "bench failures       \($failed_procs) process(es) exited non-zero",
          "",
          "targets (this run):",
          "  \($n) connections                 \(if $connected >= $n and $peak >= $n then "met" else "MISSED" end)",
          "  node peak RSS <= \($rss_target) MB         \(if $hwm <= $rss_target * 1024 then "met" else "MISSED" end)",
          "  >= 99.9 % of greetings answered  \(if $ok * 1000 >= 999 * $scheduled and $ok * 1000 >= 999 * ($ok + $failed) then "met" else "MISSED" end)"
        ' "$all"
}

case $MODE in
    table) table ;;
    scale) scale ;;
esac
