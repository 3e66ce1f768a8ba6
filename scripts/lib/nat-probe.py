#!/usr/bin/env python3
"""Probes for scripts/nat-netns.sh --selftest: they check the NAT topology itself,
without p2p-node. Every command is bounded in time and prints one line.

  nat-probe.py ping IP [SECS]                  ICMP echo (raw socket, needs root): "OK rtt_ms=N" or "NO_REPLY"
  nat-probe.py tcp-serve PORT SECS             accepts one connection: "ACCEPTED <peer ip>:<port>" or "NONE"
  nat-probe.py tcp-connect IP PORT [SECS]      "CONNECTED", "REFUSED" (a reset came back) or "TIMEOUT" (dropped)
  nat-probe.py udp-rendezvous PORT SECS        tells each of two registered clients the other's observed address
  nat-probe.py udp-punch NAME BIND_PORT SERVER_IP SERVER_PORT SECS [WAIT_MS]
      registers with the rendezvous server, learns its own observed address and
      the peer's, waits WAIT_MS, then sends a packet to the peer's observed
      address every 50 ms: "PUNCHED observed=<ip:port> peer=<ip:port> after_ms=N"
      (exit 0) once a packet of the peer arrives, else "NO_PUNCH observed=..." (exit 1).
      The rendezvous servers print READY once they listen.
  nat-probe.py tcp-rendezvous PORT SECS
  nat-probe.py tcp-punch NAME BIND_PORT SERVER_IP SERVER_PORT SECS [WAIT_MS]
      the same over TCP: the rendezvous connection and the punches share BIND_PORT
      (SO_REUSEPORT), the punch is a simultaneous open, retried every 0.5 s; the
      line also counts the resets (connection refused) and timeouts seen.
"""

import os
import select
import socket
import struct
import sys
import time


def now():
    return time.monotonic()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(ip, secs=2.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    deadline = now() + secs
    seq = 0
    while now() < deadline:
        seq += 1
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        payload = b"p2pnat-selftest"
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
        sent = now()
        try:
            sock.sendto(packet, (ip, 0))
        except OSError as err:  # no route: the network is unreachable from here
            print("NO_ROUTE %s" % err.strerror)
            return 1
        while now() < min(deadline, sent + 0.5):
            ready, _, _ = select.select([sock], [], [], max(0.0, min(deadline, sent + 0.5) - now()))
            if not ready:
                break
            data, addr = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident and addr[0] == ip:
                print("OK rtt_ms=%.2f" % ((now() - sent) * 1000))
                return 0
    print("NO_REPLY")
    return 1


def tcp_serve(port, secs):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(4)
    srv.settimeout(secs)
    try:
        conn, addr = srv.accept()
    except socket.timeout:
        print("NONE")
        return 1
    print("ACCEPTED %s:%d" % addr, flush=True)
    conn.close()
    return 0


def tcp_connect(ip, port, secs=2.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(secs)
    try:
        sock.connect((ip, port))
    except ConnectionRefusedError:
        print("REFUSED")
        return 1
    except (socket.timeout, TimeoutError):
        print("TIMEOUT")
        return 1
    except OSError as err:
        print("ERROR %s" % err.strerror)
        return 1
    print("CONNECTED")
    return 0


def udp_rendezvous(port, secs):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print("READY", flush=True)
    clients = {}
    deadline = now() + secs
    while now() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - now()))
        if not ready:
            break
        data, addr = sock.recvfrom(2048)
        words = data.decode(errors="replace").split()
        if len(words) != 2 or words[0] != "REGISTER":
            continue
        clients[words[1]] = addr
        others = [a for n, a in clients.items() if n != words[1]]
        reply = "YOU %s %d" % addr
        if others:
            reply += " PEER %s %d" % others[0]
        sock.sendto(reply.encode(), addr)
    print("RENDEZVOUS clients=%s" % ",".join("%s=%s:%d" % (n, a[0], a[1]) for n, a in sorted(clients.items())))
    return 0


def udp_punch(name, bind_port, server_ip, server_port, secs, wait_ms=0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", bind_port))
    server = (server_ip, server_port)
    start = now()
    deadline = start + secs
    observed = peer = None
    next_register = 0.0
    while peer is None and now() < deadline:
        if now() >= next_register:
            sock.sendto(("REGISTER %s" % name).encode(), server)
            next_register = now() + 0.2
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            data, addr = sock.recvfrom(2048)
            words = data.decode(errors="replace").split()
            if addr == server and len(words) >= 3 and words[0] == "YOU":
                observed = "%s:%s" % (words[1], words[2])
                if len(words) == 6 and words[3] == "PEER":
                    peer = (words[4], int(words[5]))
    if peer is None:
        print("NO_PEER observed=%s" % observed)
        return 1
    time.sleep(wait_ms / 1000.0)
    punch_start = now()
    got = None
    next_send = 0.0
    stop_at = deadline
    while now() < stop_at:
        if now() >= next_send:
            sock.sendto(("PUNCH %s" % name).encode(), peer)
            next_send = now() + 0.05
        ready, _, _ = select.select([sock], [], [], 0.01)
        if not ready:
            continue
        try:
            data, addr = sock.recvfrom(2048)
        except ConnectionRefusedError:  # an ICMP error for an earlier packet
            continue
        if addr != server and data.startswith(b"PUNCH ") and got is None:
            got = (addr, now())
            stop_at = min(deadline, now() + 0.5)  # keep sending, so the peer gets ours too
    if got is None:
        print("NO_PUNCH observed=%s peer=%s:%d" % (observed, peer[0], peer[1]))
        return 1
    print("PUNCHED observed=%s peer=%s:%d from=%s:%d after_ms=%d" % (
        observed, peer[0], peer[1], got[0][0], got[0][1], (got[1] - punch_start) * 1000))
    return 0


def tcp_rendezvous(port, secs):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(4)
    print("READY", flush=True)
    conns = {}  # name -> (socket, observed address)
    pending = []
    deadline = now() + secs
    while now() < deadline:
        ready, _, _ = select.select([srv] + pending, [], [], max(0.0, deadline - now()))
        if not ready:
            break
        for sock in ready:
            if sock is srv:
                conn, _ = srv.accept()
                pending.append(conn)
                continue
            data = sock.recv(256)
            pending.remove(sock)
            words = data.decode(errors="replace").split()
            if len(words) != 2 or words[0] != "REGISTER":
                sock.close()
                continue
            conns[words[1]] = (sock, sock.getpeername())
            if len(conns) == 2:
                (na, (sa, aa)), (nb, (sb, ab)) = conns.items()
                sa.sendall(("YOU %s %d PEER %s %d\n" % (aa + ab)).encode())
                sb.sendall(("YOU %s %d PEER %s %d\n" % (ab + aa)).encode())
    print("RENDEZVOUS clients=%s" % ",".join("%s=%s:%d" % (n, c[1][0], c[1][1]) for n, c in sorted(conns.items())))
    return 0


def reuse_socket(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", port))
    return sock


def tcp_punch(name, bind_port, server_ip, server_port, secs, wait_ms=0):
    """TCP simultaneous open from the port the rendezvous connection uses (port reuse,
    as libp2p does): connects to the peer's observed address again and again until a
    connection is up and a line of the peer's came over it."""
    start = now()
    deadline = start + secs
    reg = reuse_socket(bind_port)
    reg.settimeout(secs)
    try:
        reg.connect((server_ip, server_port))
        reg.sendall(("REGISTER %s" % name).encode())
        line = reg.makefile().readline().split()
    except OSError as err:
        print("NO_PEER %s" % err)
        return 1
    if len(line) != 6:
        print("NO_PEER")
        return 1
    observed = "%s:%s" % (line[1], line[2])
    peer = (line[4], int(line[5]))
    time.sleep(wait_ms / 1000.0)
    punch_start = now()
    resets = timeouts = 0
    while now() < deadline:
        sock = reuse_socket(bind_port)
        sock.settimeout(min(0.5, max(0.05, deadline - now())))
        try:
            sock.connect(peer)
            sock.sendall(("HELLO %s\n" % name).encode())
            got = sock.makefile().readline()
            if got.startswith("HELLO "):
                print("PUNCHED observed=%s peer=%s:%d got=%s after_ms=%d resets=%d timeouts=%d" % (
                    observed, peer[0], peer[1], got.split()[1], (now() - punch_start) * 1000, resets, timeouts))
                time.sleep(0.3)
                return 0
        except ConnectionRefusedError:
            resets += 1
            time.sleep(0.05)
        except (socket.timeout, TimeoutError):
            timeouts += 1
        except OSError:
            time.sleep(0.05)
        finally:
            sock.close()
    print("NO_PUNCH observed=%s peer=%s:%d resets=%d timeouts=%d" % (observed, peer[0], peer[1], resets, timeouts))
    return 1


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "ping":
        return ping(args[0], float(args[1]) if len(args) > 1 else 2.0)
    if cmd == "tcp-serve":
        return tcp_serve(int(args[0]), float(args[1]))
    if cmd == "tcp-connect":
        return tcp_connect(args[0], int(args[1]), float(args[2]) if len(args) > 2 else 2.0)
    if cmd == "udp-rendezvous":
        return udp_rendezvous(int(args[0]), float(args[1]))
    if cmd == "udp-punch":
        return udp_punch(args[0], int(args[1]), args[2], int(args[3]), float(args[4]),
                         int(args[5]) if len(args) > 5 else 0)
    if cmd == "tcp-rendezvous":
        return tcp_rendezvous(int(args[0]), float(args[1]))
    if cmd == "tcp-punch":
        return tcp_punch(args[0], int(args[1]), args[2], int(args[3]), float(args[4]),
                         int(args[5]) if len(args) > 5 else 0)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
