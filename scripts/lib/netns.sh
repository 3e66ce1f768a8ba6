# shellcheck shell=bash
# The harness shared by the network-namespace test scripts (sourced, not run):
# logging, pass/fail counters, polling with a deadline, our namespaces on a
# bridge that lives in a namespace of its own (so no host interface is ever
# touched and mDNS multicast stays between them), and the cleanup.
#
# The sourcing script sets WORK (its temp dir), PASSED=0, FAILED=0,
# NAMESPACES=() and an array of the PIDs it starts, and installs
#   trap 'netns_cleanup <name of that array>' EXIT

say() { printf '# %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 2; }

pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# `within SECS COMMAND...`: polls COMMAND until it succeeds or SECS have passed.
within() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        (($(now_ms) >= deadline)) && return 1
        sleep 0.2
    done
}

# `make_ns NAME`: a fresh namespace with loopback up, removed by netns_cleanup.
make_ns() {
    local pid
    # Left over by a run that could not clean up (killed with SIGKILL): ours by name.
    if ip netns list | grep -qw "^$1"; then
        for pid in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$1" 2>/dev/null
    fi
    ip netns add "$1" || die "cannot create network namespace $1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
}

# `make_lan BRIDGE_NS SUBNET COUNT NAME_FN`: a bridge in namespace BRIDGE_NS and
# COUNT namespaces `$(NAME_FN i)` on it, each with SUBNET.(10+i)/24 on its eth0
# (multicast on, for mDNS); sets IP[i].
make_lan() {
    local br_ns=$1 subnet=$2 count=$3 name_fn=$4 i ns
    make_ns "$br_ns"
    ip -n "$br_ns" link add br0 type bridge mcast_snooping 0 || die "cannot create the bridge"
    ip -n "$br_ns" link set br0 multicast on up
    for i in $(seq 1 "$count"); do
        ns=$("$name_fn" "$i")
        IP[i]=$subnet.$((10 + i))
        make_ns "$ns"
        # Both ends are created inside our namespaces: the host's never sees them.
        ip -n "$br_ns" link add "p$i" type veth peer name eth0 netns "$ns" || die "cannot create veth $i"
        ip -n "$br_ns" link set "p$i" master br0 multicast on up
        ip -n "$ns" addr add "${IP[$i]}/24" dev eth0
        ip -n "$ns" link set eth0 multicast on up
        ip -n "$ns" route add 224.0.0.0/4 dev eth0
    done
    say "$count namespaces on bridge br0 in $br_ns, addresses $subnet.11-$subnet.$((10 + count))"
}

# netns_begin TAG: how every script here starts: a work dir (/tmp/TAG.XXXXXX),
# the tables of its processes (PID) and addresses (IP), its namespaces, its
# pass/fail counts, and the traps that clean all of it up on any exit.
netns_begin() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    declare -ga PID IP
    NAMESPACES=()
    PASSED=0
    FAILED=0
    trap 'netns_cleanup PID' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# `netns_cleanup PIDS_ARRAY`: kills what we started, removes our namespaces
# (and anything still running in them, which can only be ours), and removes
# the logs unless a check failed or KEEP_LOGS is set.
netns_cleanup() {
    local -n pids=$1
    local key ns pid
    { # quiet: no "Killed" job notices
        for key in "${!pids[@]}"; do
            [[ -n ${pids[$key]} ]] && kill -KILL "${pids[$key]}"
        done
        wait
    } 2>/dev/null
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if ((FAILED == 0)) && [[ -z ${KEEP_LOGS:-} ]]; then
        rm -rf "$WORK"
    else
        say "logs kept in $WORK"
    fi
}

# `make_lan_batch BRIDGE_NS SUBNET COUNT NAME_FN`: what make_lan makes, for
# many namespaces: the veths go in with one `ip -batch` in the bridge
# namespace, and each namespace's addresses are set up in parallel jobs.
make_lan_batch() {
    local br_ns=$1 subnet=$2 count=$3 name_fn=$4 i ns
    local -a names=()
    make_ns "$br_ns"
    ip -n "$br_ns" link add br0 type bridge mcast_snooping 0 || die "cannot create the bridge"
    ip -n "$br_ns" link set br0 multicast on up
    for i in $(seq 1 "$count"); do
        names[i]=$("$name_fn" "$i")
        IP[i]=$subnet.$((10 + i))
        make_ns "${names[$i]}"
    done
    # Both ends are created inside our namespaces: the host's never sees them.
    for i in $(seq 1 "$count"); do
        echo "link add p$i type veth peer name eth0 netns ${names[$i]}"
        echo "link set p$i master br0 multicast on up"
    done | ip -n "$br_ns" -batch - || die "cannot create the veths"
    for i in $(seq 1 "$count"); do
        printf '%s\n' "addr add ${IP[$i]}/24 dev eth0" "link set eth0 multicast on up" \
            "route add 224.0.0.0/4 dev eth0" | ip -n "${names[$i]}" -batch - &
        ((i % 16 == 0)) && wait
    done
    wait
    for i in $(seq 1 "$count"); do
        ip -n "${names[$i]}" -4 route show 224.0.0.0/4 | grep -q eth0 || die "namespace ${names[$i]} not set up"
    done
    say "$count namespaces on bridge br0 in $br_ns, addresses $subnet.11-$subnet.$((10 + count))"
}

# `sysctl_raise KEY VALUE`: raises a host sysctl (a /proc/sys path below
# /proc/sys, dots or slashes) to at least VALUE; `sysctl_restore` puts back
# every value changed so (call it from the EXIT trap).
declare -gA SYSCTL_SAVED=()
sysctl_raise() {
    local path=/proc/sys/${1//.//} current
    current=$(<"$path") || die "cannot read $path"
    ((current >= $2)) && return 0
    [[ -n ${SYSCTL_SAVED[$path]:-} ]] || SYSCTL_SAVED[$path]=$current
    echo "$2" >"$path" || die "cannot set $1 to $2"
    say "raised $1 from $current to $2 for this run"
}
sysctl_restore() {
    local path
    for path in "${!SYSCTL_SAVED[@]}"; do
        echo "${SYSCTL_SAVED[$path]}" >"$path" && say "restored ${path#/proc/sys/} to ${SYSCTL_SAVED[$path]}"
        unset "SYSCTL_SAVED[$path]"
    done
}

# `mcast_counters NS...`: the summed IPv4 multicast packet counters of the
# namespaces (IpExt InMcastPkts and OutMcastPkts of /proc/net/netstat) and
# the packets dropped by their UDP sockets on port 5353 (the "drops" column
# of /proc/net/udp, a full receive buffer): prints "IN OUT MDNS_DROPS".
mcast_counters() {
    local ns
    for ns in "$@"; do
        ip netns exec "$ns" cat /proc/net/netstat /proc/net/udp
    done | awk '
        $1 == "IpExt:" && !ipx { for (i = 2; i <= NF; i++) ipcol[$i] = i; ipx = 1; next }
        $1 == "IpExt:" && ipx { in_ += $ipcol["InMcastPkts"]; out += $ipcol["OutMcastPkts"]; ipx = 0; next }
        $2 ~ /:14E9$/ { drops += $NF }
        END { print in_ + 0, out + 0, drops + 0 }'
}
