#!/usr/bin/env python3
"""Prints which section of each mDNS response holds which record types.

    mdns-sections.py SOURCE_IP [SECONDS]

Binds 0.0.0.0:5353 with SO_REUSEADDR/SO_REUSEPORT beside whatever else uses
it (run it inside a network namespace), joins 224.0.0.251 and, for every
response whose source is SOURCE_IP, prints one line:

    MDNS_RESPONSE answers=PTR,TXT,TXT authorities= additionals= txt_in=answers

Receive only: it never sends. Stops after SECONDS (default 30).
"""
import socket
import struct
import sys
import time

TYPES = {1: "A", 12: "PTR", 16: "TXT", 28: "AAAA", 33: "SRV"}


def skip_name(buf, off):
    while True:
        n = buf[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def sections(buf):
    _, flags, qd, an, ns, ar = struct.unpack_from("!6H", buf, 0)
    if not flags & 0x8000:
        return None  # a query
    off = 12
    for _ in range(qd):
        off = skip_name(buf, off) + 4
    out = {}
    for name, count in (("answers", an), ("authorities", ns), ("additionals", ar)):
        kinds = []
        for _ in range(count):
            off = skip_name(buf, off)
            rtype, _, _, rdlen = struct.unpack_from("!HHIH", buf, off)
            off += 10 + rdlen
            kinds.append(TYPES.get(rtype, str(rtype)))
        out[name] = kinds
    return out


def main():
    source = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", 5353))
    mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton("0.0.0.0")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    deadline = time.monotonic() + seconds
    print("MDNS_LISTENING", flush=True)
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            buf, (addr, _) = sock.recvfrom(9000)
        except socket.timeout:
            break
        if addr != source:
            continue
        try:
            found = sections(buf)
        except (struct.error, IndexError):
            print("MDNS_UNPARSED", len(buf), flush=True)
            continue
        if found is None:
            continue
        txt_in = ",".join(k for k, v in found.items() if "TXT" in v) or "none"
        print("MDNS_RESPONSE", " ".join(f"{k}={','.join(v)}" for k, v in found.items()),
              f"txt_in={txt_in}", flush=True)


if __name__ == "__main__":
    main()
