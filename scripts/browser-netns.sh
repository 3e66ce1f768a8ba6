#!/usr/bin/env bash
# A real browser greets a p2p-node: Debian's Chromium, headless, opens the
# js-libp2p page of web/ (WebSocket, Noise, Yamux, identify, ping) against a
# node in another network namespace. Passes only when the page's greetings
# (1.0.0 and 2.0.0) were answered, a hostile frame from the page (declared
# length over the limit) got a typed 413, and the node printed CONNECTED and
# GREETED for the browser's PeerId (the page serves greet 1.0.0 too).
#
#   sudo scripts/browser-netns.sh
#
# Two namespaces on a bridge that lives in a namespace too (no host interface
# is touched): the node in one, Chromium in the other, driven by
# web/drive.mjs (puppeteer-core), which serves the page from 127.0.0.1 in
# the browser's namespace (Chrome lets a localhost page dial a private
# address, not the other way round). Also runs the same visit from Node.js
# over TCP (web/node-peer.mjs), and prints both sets of figures: connect +
# first greeting, greeting rtt p50 over COUNT (default 100) greetings.
# The screenshot goes to target/browser/page.png.
#
# Installs what it lacks: chromium (apt), the pinned npm packages (npm ci in
# web/), then bundles the page (esbuild). Needs root, iproute2, node >= 20.
# P2P_NODE_BIN=path uses that binary instead of building one.
# HOSTILE_WS=N (default 5000; 0 skips) sends p2p-fault's hostile inputs over
# /ws (P2P_FAULT_BIN, or built); HOSTILE_OVER=tcp sends them over TCP instead.
#
# WEBRTC=1 (not in CI) also builds the node with its `webrtc` feature and has
# the page dial its `/webrtc-direct/certhash/...` address (libp2p-webrtc
# 0.10.0-alpha), and checks that the address survives a restart (the
# certificate is kept beside the key file).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEB=$ROOT/web
BIN=${P2P_NODE_BIN:-$ROOT/target/release/p2p-node}
PREFIX=${P2P_NETNS_PREFIX:-p2pweb}
SUBNET=10.81.0
WS_PORT=4001
TCP_PORT=4002
COUNT=${COUNT:-100}
ARTEFACTS=${ARTEFACTS:-$ROOT/target/browser}
WEBRTC=${WEBRTC:-0}
HOSTILE_WS=${HOSTILE_WS:-5000} # p2p-fault's hostile inputs over /ws (0: skip)
FAULT=${P2P_FAULT_BIN:-$ROOT/target/release/p2p-fault}
RTC_PORT=4003

# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

[[ $(id -u) == 0 ]] || die "needs root to create network namespaces (try: sudo $0)"
for tool in ip node npm; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
(($(node -p 'process.versions.node.split(".")[0]') >= 20)) || die "needs node >= 20, not $(node --version)"

netns_begin p2pweb

if ! command -v chromium >/dev/null; then
    say "installing Debian's chromium"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 ||
        die "cannot install chromium"
fi
if [[ ! -d $WEB/node_modules ]]; then
    say "installing the pinned npm packages (npm ci in $WEB)"
    (cd "$WEB" && npm ci --no-audit --no-fund) >&2 || die "npm ci failed in $WEB"
fi
(cd "$WEB" && npm run --silent build) >&2 || die "cannot bundle the page"
if (cd "$WEB" && node --test test/) >"$WORK/codec.out" 2>&1; then
    pass "the JavaScript greet codec reproduces the golden vectors ($(grep -E '^# (pass|fail) ' "$WORK/codec.out" | tr '\n' ' '))"
else
    fail "the JavaScript greet codec: $(grep -E '^not ok|Error' "$WORK/codec.out" | head -5)"
fi
if [[ -z ${P2P_NODE_BIN:-} ]]; then
    say "building $BIN"
    features=()
    ((WEBRTC)) && features=(--features webrtc)
    (cd "$ROOT" && cargo build --release -p p2p-node "${features[@]}") >&2 || die "cannot build p2p-node"
fi
if ((HOSTILE_WS > 0)) && [[ -z ${P2P_FAULT_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release -p p2p-fault) >&2 || die "cannot build p2p-fault"
fi
mkdir -p "$ARTEFACTS" || die "cannot create $ARTEFACTS"

node_ns() { case $1 in 1) echo "$PREFIX-node" ;; 2) echo "$PREFIX-browser" ;; esac; }
make_lan "$PREFIX-br" "$SUBNET" 2 node_ns

NODE_ID=$("$BIN" id --key-file "$WORK/node.key") || die "cannot create the node's key"
# `start_node OUT`: the node, its stdout in $WORK/OUT.out. Rate limit off:
# the page sends COUNT greetings each way back to back; bans off: the hostile
# client's 400/413 answers would ban it after a few hundred inputs.
start_node() {
    local rtc=()
    ((WEBRTC)) && rtc=(--listen "/ip4/${IP[1]}/udp/$RTC_PORT/webrtc-direct")
    ip netns exec "$(node_ns 1)" "$BIN" run --no-mdns --key-file "$WORK/node.key" --interval 1s \
        --message "hello from p2p-node" --rate-per-sec 0 --ban-threshold 0 \
        --listen "/ip4/${IP[1]}/tcp/$WS_PORT/ws" --listen "/ip4/${IP[1]}/tcp/$TCP_PORT" \
        --listen "/ip4/${IP[1]}/udp/$WS_PORT/quic-v1" "${rtc[@]}" \
        >"$WORK/$1.out" 2>"$WORK/$1.err" </dev/null &
    PID[1]=$!
}
start_node node
has() { grep -qs -- "$2" "$WORK/$1.out"; }
within 10 has node "^LISTEN .*/ws/p2p/$NODE_ID" || die "the node did not listen on /ws: $(<"$WORK/node.err")"
WS_ADDR=$(awk '$1 == "LISTEN" && /\/ws\/p2p\// { print $2; exit }' "$WORK/node.out")
TCP_ADDR="/ip4/${IP[1]}/tcp/$TCP_PORT/p2p/$NODE_ID"
pass "the node listens on WebSocket: $(grep '^LISTEN' "$WORK/node.out" | tr '\n' ' ')"

# The browser.
ip netns exec "$(node_ns 2)" env HOME="$WORK" node "$WEB/drive.mjs" "$WS_ADDR" "$ARTEFACTS/page.png" "$COUNT" \
    "$(command -v chromium)" >"$WORK/page.out" 2>"$WORK/page.err" </dev/null &
PID[2]=$!
wait "${PID[2]}"
page_rc=$?
PID[2]=
summary=$(head -n1 "$WORK/page.out")
cp "$WORK/page.out" "$ARTEFACTS/page-summary.json" 2>/dev/null
say "$(grep -m1 -E 'Chrome|Chromium|HeadlessChrome' "$WORK/page.err" | sed 's/^# //')"
field() { node -e 'const s = JSON.parse(process.argv[1]); const v = process.argv[2].split("/").reduce((o, k) => o?.[k], s); console.log(typeof v === "object" ? JSON.stringify(v) : v)' "$1" "$2"; }
if ((page_rc == 0)); then
    pass "the page reported pass over WebSocket"
else
    fail "the page did not pass (exit $page_rc): ${summary:-no report}; $(grep -v '^# console' "$WORK/page.err" | tail -5)"
fi
BROWSER_ID=$(field "$summary" self 2>/dev/null)
if [[ -n $summary ]]; then
    g1=$(field "$summary" 'steps/greet 1.0.0/answer/ok/message')
    g2=$(field "$summary" 'steps/greet 2.0.0/answer/ok/message')
    hostile=$(field "$summary" 'steps/hostile frame/answer/err/code')
    [[ $g1 == *"you said: hello from js-libp2p"* ]] && pass "greet 1.0.0 from the page answered: \"$g1\"" ||
        fail "greet 1.0.0 from the page: $(field "$summary" 'steps/greet 1.0.0')"
    [[ $g2 == *"you said: hello over 2.0.0"* ]] && pass "greet 2.0.0 from the page answered: \"$g2\"" ||
        fail "greet 2.0.0 from the page: $(field "$summary" 'steps/greet 2.0.0')"
    [[ $hostile == 413 ]] && pass "the page's hostile frame got a typed 413: $(field "$summary" 'steps/hostile frame/answer/err/message')" ||
        fail "the page's hostile frame: $(field "$summary" 'steps/hostile frame')"
fi
if [[ -n $BROWSER_ID ]] && within 5 has node "^GREETED $BROWSER_ID "; then
    pass "the node printed $(grep -m1 "^CONNECTED $BROWSER_ID " "$WORK/node.out" | cut -d' ' -f1-3) and $(grep -m1 "^GREETED $BROWSER_ID " "$WORK/node.out")"
    has node "^CONNECTED $BROWSER_ID .*/ws" || fail "no CONNECTED line over /ws for the browser $BROWSER_ID"
else
    fail "the node printed no GREETED for the browser ${BROWSER_ID:-(unknown)}: $(grep -E '^(CONNECTED|GREETED|GREET_FAILED)' "$WORK/node.out" | head -5)"
fi
[[ -s $ARTEFACTS/page.png ]] && pass "screenshot saved: $ARTEFACTS/page.png" || fail "no screenshot"

# The same visit from Node.js over TCP, for the figures.
ip netns exec "$(node_ns 2)" node "$WEB/node-peer.mjs" "$TCP_ADDR" "$COUNT" >"$WORK/js.out" 2>"$WORK/js.err" </dev/null
js_rc=$?
js=$(head -n1 "$WORK/js.out")
((js_rc == 0)) && pass "js-libp2p in Node.js ($(node --version)) did the same visit over TCP" ||
    fail "js-libp2p in Node.js over TCP (exit $js_rc): ${js:-nothing}; $(tail -3 "$WORK/js.err")"

figures() {
    [[ -n $2 ]] || return
    printf '%-34s connect %6s ms, connect + first greeting %6s ms, rtt p50 over %s: 1.0.0 %s ms, 2.0.0 %s ms\n' "$1" \
        "$(field "$2" steps/connect/ms)" "$(field "$2" connect_and_first_greeting_ms)" "$COUNT" \
        "$(field "$2" 'steps/rtt 1.0.0/p50_ms')" "$(field "$2" 'steps/rtt 2.0.0/p50_ms')"
}
# p2p-fault's hostile inputs (as in faults-netns.sh, scenario 2) over /ws, with a
# well-behaved prober beside them: typed answers, nothing left hanging.
if ((HOSTILE_WS > 0)); then
    ip netns exec "$(node_ns 2)" "$FAULT" hostile "$([[ ${HOSTILE_OVER:-ws} == tcp ]] && echo "$TCP_ADDR" || echo "$WS_ADDR")" --count "$HOSTILE_WS" --max-time 60s --json \
        >"$WORK/hostile.out" 2>"$WORK/hostile.err" </dev/null
    h_rc=$?
    h=$(grep '^{' "$WORK/hostile.out" | tail -n1)
    hj() { field "$h" "$1"; }
    say "hostile over /ws: $(hj inputs) inputs, 400=$(hj outcome.400) 413=$(hj outcome.413) ok=$(hj outcome.ok)" \
        "reset=$(hj outcome.reset) closed=$(hj outcome.closed) timeout=$(hj outcome.timeout) not_read=$(hj outcome.not_read)"
    # (Well-formed requests embedded in hostile streams: answered as often over
    # /ws as over TCP on this node, HOSTILE_OVER=tcp shows it; reported, not checked.)
    if ((h_rc == 0)) && [[ $(hj inputs) == "$HOSTILE_WS" && $(hj outcome.timeout) == 0 && $(hj outcome.bad_answer) == 0 &&
        $(hj outcome.open_failed) == 0 && $(hj connections_closed) == 0 &&
        $(hj probes_ok) == "$(hj probes)" && $(hj probes) -gt 0 ]]; then
        pass "$HOSTILE_WS hostile inputs over /ws answered with codes, none hanging, the connection kept," \
            "$(hj probes_ok) of $(hj probes) probes ok (embedded requests answered: $(hj embedded_answered) of $(hj embedded_sent))"
    else
        fail "hostile inputs over /ws (exit $h_rc): ${h:-no summary}; $(tail -n 3 "$WORK/hostile.err" | tr '\n' ' ')"
    fi
fi

# WebRTC-direct (WEBRTC=1): the same page over /webrtc-direct, and the address kept across a restart.
if ((WEBRTC)); then
    RTC_ADDR=$(awk '$1 == "LISTEN" && /webrtc-direct/ { print $2; exit }' "$WORK/node.out")
    if [[ -z $RTC_ADDR ]]; then
        fail "WebRTC-direct: the node printed no /webrtc-direct LISTEN line: $(grep -i -m3 -E 'error|webrtc' "$WORK/node.err")"
    else
        say "WebRTC-direct address: $RTC_ADDR"
        ip netns exec "$(node_ns 2)" env HOME="$WORK" PAGE_DEADLINE_MS=30000 node "$WEB/drive.mjs" "$RTC_ADDR" \
            "$ARTEFACTS/page-webrtc.png" "$COUNT" "$(command -v chromium)" >"$WORK/rtc.out" 2>"$WORK/rtc.err" </dev/null
        rtc_rc=$?
        rtc=$(head -n1 "$WORK/rtc.out")
        cp "$WORK/rtc.out" "$ARTEFACTS/page-webrtc-summary.json" 2>/dev/null
        cp "$WORK/rtc.err" "$ARTEFACTS/page-webrtc.log" 2>/dev/null
        if ((rtc_rc == 0)); then
            pass "the page greeted the node over WebRTC-direct: $(field "$rtc" 'steps/greet 1.0.0/answer/ok/message')"
            figures "Chromium page, WebRTC-direct" "$rtc" | sed 's/^/#   /' >&2
        else
            fail "the page over WebRTC-direct (exit $rtc_rc): ${rtc:-no report}; $(grep -v '^# page:' "$WORK/rtc.err" | tail -8 | tr '\n' '|')"
        fi
        kill -TERM "${PID[1]}" 2>/dev/null && wait "${PID[1]}"
        start_node restarted
        within 10 has restarted "webrtc-direct" || true
        again=$(awk '$1 == "LISTEN" && /webrtc-direct/ { print $2; exit }' "$WORK/restarted.out")
        [[ $again == "$RTC_ADDR" ]] && pass "the /webrtc-direct address is the same after a restart" ||
            fail "the /webrtc-direct address changed on restart: $RTC_ADDR -> ${again:-none}"
        cat "$WORK/restarted.err" >>"$WORK/node.err"
    fi
fi

if grep -qi panic "$WORK/node.err"; then
    fail "the node panicked: $(grep -i -m1 panic "$WORK/node.err")"
else
    pass "no panic in the node's stderr"
fi

say "figures (node and client in two namespaces on one bridge):"
figures "Chromium page, WebSocket" "$summary" | sed 's/^/#   /' >&2
figures "Node.js js-libp2p, TCP" "$js" | sed 's/^/#   /' >&2

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
