//! Peers announced the way js-libp2p announces them, which `libp2p-mdns`
//! does not hear.
//!
//! `@libp2p/mdns` (12.x) puts its `dnsaddr=` TXT records in the *answers*
//! section of its responses; `libp2p-mdns` 0.49 reads them only from the
//! *additional* section, so a stock js-libp2p node is invisible to it. This
//! is a receive-only listener beside `libp2p-mdns`: it binds UDP 5353 with
//! address and port reuse, joins the mDNS group on every IPv4 interface as
//! they come up, parses each response with the DNS crate and version
//! `libp2p-mdns` uses (hickory-proto 0.26), takes the `dnsaddr=` records
//! from the answers *and* the additional section, and hands what it found to
//! the swarm task, which feeds the same lifecycle policy as `libp2p-mdns`
//! (so each peer is dialed once, whoever heard of it).
//!
//! On the same socket it hears everyone's queries, which paces this node's
//! own (see [`querier`]): the one thing it sends is that query.
//!
//! Only the local link is believed (RFC 6762 §11): a datagram whose source
//! is in none of our interfaces' networks (as `if-watch` reports them), nor
//! link-local, is dropped unread, so a host beyond a router cannot feed
//! peers to our dialer nor put our queries off.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record};
use if_watch::IpNet;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::origin;

mod querier;

use querier::{QuerySchedule, is_peer_query, query_packet};

/// The service every libp2p implementation announces on mDNS.
const SERVICE_NAME: &str = "_p2p._udp.local.";
const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_PORT: u16 = 5353;
/// The largest mDNS packet we read (RFC 6762 allows up to 9000 bytes).
const MAX_PACKET: usize = 9000;
/// Peers announced per packet at most, and addresses per peer: remote input.
const MAX_PEERS_PER_PACKET: usize = 16;
const MAX_ADDRS_PER_PEER: usize = 8;

/// A peer and the addresses a response announced for it.
pub(crate) type Announced = (PeerId, Vec<Multiaddr>);

/// The peers a response packet announces, from `dnsaddr=` TXT records in
/// its answers or additional section, for every PTR answer of the libp2p
/// service. Addresses that cannot be dialed on a LAN (loopback, link-local,
/// relayed) are dropped, and so is an address whose `/p2p/` is not the
/// record's peer. Anything malformed yields nothing.
pub(crate) fn announced(packet: &[u8]) -> Vec<Announced> {
    let Ok(message) = Message::from_vec(packet) else { return Vec::new() };
    if message.metadata.message_type != hickory_proto::op::MessageType::Response {
        return Vec::new();
    }
    let targets: Vec<&Name> = message
        .answers
        .iter()
        .filter(|r| r.name.to_utf8() == SERVICE_NAME)
        .filter_map(|r| match &r.data {
            RData::PTR(target) => Some(&target.0),
            _ => None,
        })
        .take(MAX_PEERS_PER_PACKET)
        .collect();
    let records: Vec<&Record> = message.answers.iter().chain(message.additionals.iter()).collect();
    targets.into_iter().filter_map(|target| peer_of(target, &records)).collect()
}

fn peer_of(target: &Name, records: &[&Record]) -> Option<Announced> {
    let mut peer: Option<PeerId> = None;
    let mut addresses = Vec::new();
    let strings = records
        .iter()
        .filter(|r| &r.name == target)
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter()),
            _ => None,
        })
        .flatten();
    for string in strings {
        let Some(text) = string.strip_prefix(b"dnsaddr=") else { continue };
        let Some(mut address) = str::from_utf8(text).ok().and_then(|t| t.parse::<Multiaddr>().ok()) else {
            continue;
        };
        let Some(Protocol::P2p(id)) = address.pop() else { continue };
        if *peer.get_or_insert(id) != id {
            continue; // a record naming another peer: not this one's address
        }
        if dialable(&address) && !addresses.contains(&address) && addresses.len() < MAX_ADDRS_PER_PEER {
            addresses.push(address);
        }
    }
    Some((peer?, addresses)).filter(|(_, addresses)| !addresses.is_empty())
}

/// An address a peer on this LAN can be dialed at: a usable IP (no
/// loopback, link-local, unspecified or multicast one), not relayed.
fn dialable(address: &Multiaddr) -> bool {
    origin::ip_of(address).is_some_and(|ip| origin::usable_ip(ip, false)) && !origin::is_relayed(address)
}

/// Whether a datagram from `source` comes from the local link (RFC 6762
/// §11): inside one of `networks` (our interfaces' own, as they are up now),
/// or link-local (IPv4 169.254.0.0/16, IPv6 fe80::/10), which is on-link by
/// definition.
pub(crate) fn on_link<'a>(source: IpAddr, networks: impl IntoIterator<Item = &'a IpNet>) -> bool {
    let source = source.to_canonical();
    let link_local = match source {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => ip.is_unicast_link_local(),
    };
    link_local || networks.into_iter().any(|network| network.contains(&source))
}

/// Listens until `found` is closed; each announced peer is `try_send`: the
/// swarm task never waits for this, and this never waits for it. Queries
/// the LAN about every `query_interval`, unless someone else just did.
pub(crate) async fn listen(found: mpsc::Sender<Announced>, query_interval: Duration) {
    let socket = match bind() {
        Ok(socket) => socket,
        Err(err) => {
            warn!(%err, "cannot listen for js-libp2p mDNS announcements");
            return;
        }
    };
    let mut interfaces = match if_watch::tokio::IfWatcher::new() {
        Ok(watcher) => watcher,
        Err(err) => {
            warn!(%err, "cannot watch interfaces for js-libp2p mDNS announcements");
            return;
        }
    };
    let mut buf = vec![0; MAX_PACKET];
    let mut schedule = QuerySchedule::new(query_interval, Instant::now());
    let mut up: HashSet<Ipv4Addr> = HashSet::new();
    // Every interface network that is up (IPv4 and IPv6): the local link.
    let mut networks: HashSet<IpNet> = HashSet::new();
    loop {
        tokio::select! {
            Some(event) = interfaces.next() => match event {
                Ok(if_watch::IfEvent::Up(net)) => {
                    networks.insert(net);
                    if let IpAddr::V4(ip) = net.addr()
                        && !ip.is_loopback()
                    {
                        up.insert(ip);
                        if let Err(err) = socket.join_multicast_v4(MDNS_GROUP, ip) {
                            debug!(%ip, %err, "cannot join the mDNS group");
                        }
                    }
                }
                Ok(if_watch::IfEvent::Down(net)) => {
                    networks.remove(&net);
                    if let IpAddr::V4(ip) = net.addr() {
                        up.remove(&ip);
                    }
                }
                Err(_) => {}
            },
            () = tokio::time::sleep_until(schedule.next()) => {
                // Ours loops back to us too, and puts the next one off.
                send_query(&socket, &up).await;
                schedule.on_query(Instant::now());
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                if !on_link(from.ip(), &networks) {
                    debug!(%from, "mDNS datagram from beyond the local link; dropped");
                    continue;
                }
                if is_peer_query(&buf[..len]) {
                    schedule.on_query(Instant::now());
                    continue;
                }
                for peer in announced(&buf[..len]) {
                    debug!(peer = %peer.0, %from, "announced in an mDNS answer");
                    if found.try_send(peer).is_err() && found.is_closed() {
                        return;
                    }
                }
            }
            () = found.closed() => return,
        }
    }
}

/// Our query, on every IPv4 interface that is up.
async fn send_query(sender: &UdpSocket, interfaces: &HashSet<Ipv4Addr>) {
    let packet = query_packet();
    for ip in interfaces {
        let sent = socket2::SockRef::from(sender).set_multicast_if_v4(ip);
        if let Err(err) = sent {
            debug!(%ip, %err, "cannot send an mDNS query on this interface");
            continue;
        }
        if let Err(err) = sender.send_to(&packet, (MDNS_GROUP, MDNS_PORT)).await {
            debug!(%ip, %err, "cannot send an mDNS query on this interface");
        }
    }
}

fn bind() -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol as SocketProtocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(SocketProtocol::UDP))?;
    // Beside libp2p-mdns (and any other mDNS responder) on the same port.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), MDNS_PORT).into())?;
    // Our queries go out from 5353 too, so responders answer by multicast
    // (RFC 6762 §5.1, §11).
    socket.set_multicast_ttl_v4(255)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests;
