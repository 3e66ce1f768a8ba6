#!/usr/bin/env python3
"""Announce a libp2p peer on mDNS the way js-libp2p's @libp2p/mdns does.

Sends, to 224.0.0.251:5353, an mDNS response whose `dnsaddr=` TXT record sits
in the *answers* section (beside the PTR for `_p2p._udp.local`), as
`@libp2p/mdns` 12.x lays it out; rust-libp2p's libp2p-mdns puts TXT records in
the additional section and does not read them from the answers. Run it only
inside a network namespace: it multicasts.

    js-mdns-announce.py PEER_ID MULTIADDR... [--every SECS] [--count N]
"""
import argparse
import socket
import struct
import time


def name(*labels):
    out = b""
    for label in labels:
        for part in label.split("."):
            if part:
                out += bytes([len(part)]) + part.encode()
    return out + b"\x00"


def record(rname, rtype, rclass, ttl, rdata):
    return rname + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def response(peer_id, addrs):
    label = peer_id[:16]  # js uses a random label; any will do
    service = name("_p2p._udp.local")
    target = name(label, "_p2p._udp.local")
    ptr = record(service, 12, 1, 120, target)
    strings = b"".join(bytes([len(s)]) + s for s in (f"dnsaddr={a}/p2p/{peer_id}".encode() for a in addrs))
    txt = record(target, 16, 0x8001, 120, strings)  # class IN with the cache-flush bit, as responders send it
    header = struct.pack("!HHHHHH", 0, 0x8400, 0, 2, 0, 0)  # a response, authoritative; 2 answers
    return header + ptr + txt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("peer_id")
    parser.add_argument("addrs", nargs="+")
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args()
    packet = response(args.peer_id, args.addrs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    for _ in range(args.count):  # bounded: stops by itself
        sock.sendto(packet, ("224.0.0.251", 5353))
        time.sleep(args.every)


if __name__ == "__main__":
    main()
