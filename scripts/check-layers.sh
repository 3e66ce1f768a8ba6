#!/usr/bin/env bash
# The crate layering of ARCHITECTURE.md, checked on the real dependency trees
# (normal dependencies only: what a user of each crate compiles).
# Module layering inside p2p-transport is checked by its tests/layering.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# forbid <crate> <pattern> <why> [depth]: no crate in <crate>'s tree (down to
# [depth]; all of it by default) may match <pattern>.
forbid() {
  local crate=$1 pattern=$2 why=$3 depth=${4:-}
  local hits
  hits=$(cargo tree -q -p "$crate" -e normal --prefix none --no-dedupe ${depth:+--depth "$depth"} \
    | awk '{print $1}' | sort -u | grep -E "^(${pattern})$" || true)
  if [ -n "$hits" ]; then
    echo "FAIL $crate depends on $(echo "$hits" | tr '\n' ' '): $why"
    fail=1
  else
    echo "ok   $crate: no ${pattern//|/, }"
  fi
}

forbid p2p-protocol 'libp2p|libp2p-swarm|libp2p-core|tokio|tower|p2p-service|p2p-transport' \
  "p2p-protocol knows nothing about libp2p, tokio or Tower"
forbid p2p-service 'libp2p|libp2p-swarm|libp2p-core|p2p-transport' "p2p-service has no swarm in sight"
forbid p2p-transport 'hdrhistogram|clap|axum|p2p-load' "the library carries no tool's dependencies"
# Libraries report errors with thiserror; anyhow is for binaries (libp2p's
# own proc-macros use it, so only direct dependencies are checked).
for lib in p2p-protocol p2p-service p2p-transport p2p-load; do
  forbid "$lib" 'anyhow|clap' "a library: thiserror, no CLI dependencies" 1
done

# Metrics are a cargo feature: off, the transport compiles no prometheus-client.
if grep -q '^prometheus-client ' < <(cargo tree -q -p p2p-transport -e normal --prefix none); then
  echo "FAIL p2p-transport pulls prometheus-client without its metrics feature"
  fail=1
else
  echo "ok   p2p-transport: prometheus-client only with the metrics feature"
fi
exit $fail
