//! When this node asks the LAN for libp2p peers: one query per interval for
//! the whole LAN, not one per node.
//!
//! `libp2p-mdns` restarts its query timer whenever it hears an answer, so
//! every node restarts it at the same moment (the answers to one query reach
//! all of them at once) and all of them query again together one interval
//! later: on a 64-node LAN about ten queries went out per interval, each
//! answered by every node (BENCHMARKS.md, "Big LANs"). Here each node waits
//! the interval plus a random part of half of it, and puts its own query off
//! whenever it hears anyone's (RFC 6762's duplicate question suppression):
//! the first timer to fire queries for everyone. `libp2p-mdns` keeps a longer
//! interval of its own, which every answer restarts, so it only queries when
//! no node on the LAN runs this schedule.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::time::Instant;

use super::SERVICE_NAME;

/// When this node's next query is due.
#[derive(Debug)]
pub(crate) struct QuerySchedule {
    interval: Duration,
    next: Instant,
    random: RandomState,
    draws: u64,
}

impl QuerySchedule {
    /// The first query comes one jittered interval from `now`: at start,
    /// `libp2p-mdns` has already queried.
    pub(crate) fn new(interval: Duration, now: Instant) -> Self {
        let mut schedule = Self { interval, next: now, random: RandomState::new(), draws: 0 };
        schedule.put_off(now);
        schedule
    }

    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// Someone (this node included) asked the LAN at `now`: the answers to
    /// that query refresh us too, so ours waits another jittered interval.
    pub(crate) fn on_query(&mut self, now: Instant) {
        self.put_off(now);
    }

    fn put_off(&mut self, now: Instant) {
        self.draws += 1;
        let spread = self.interval / 2;
        let fraction = (self.random.hash_one(self.draws) % 1_000) as u32;
        self.next = now + self.interval + spread * fraction / 1_000;
    }
}

/// The query `libp2p-mdns` sends: PTR `_p2p._udp.local`, id 0 (RFC 6762 §18.1).
pub(crate) fn query_packet() -> Vec<u8> {
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    let service = Name::from_ascii(SERVICE_NAME).expect("a valid name");
    message.add_query(Query::query(service, RecordType::PTR));
    message.to_vec().expect("a query encodes")
}

/// Whether `packet` asks for libp2p peers: someone's query, ours included.
pub(crate) fn is_peer_query(packet: &[u8]) -> bool {
    let Ok(message) = Message::from_vec(packet) else { return false };
    message.metadata.message_type == MessageType::Query
        && message.queries.iter().any(|q| q.name().to_utf8() == SERVICE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(15);

    #[test]
    fn our_query_packet_is_a_peer_query_and_an_answer_is_not() {
        assert!(is_peer_query(&query_packet()));
        let answer = Message::new(0, MessageType::Response, OpCode::Query).to_vec().unwrap();
        assert!(!is_peer_query(&answer));
        assert!(!is_peer_query(b"not dns"));
    }

    #[test]
    fn the_next_query_is_due_between_one_and_one_and_a_half_intervals_on() {
        let now = Instant::now();
        let mut schedule = QuerySchedule::new(INTERVAL, now);
        for _ in 0..100 {
            let wait = schedule.next() - now;
            assert!(wait >= INTERVAL && wait <= INTERVAL * 3 / 2, "{wait:?}");
            schedule.on_query(now);
        }
    }

    #[test]
    fn nodes_draw_different_delays_so_one_queries_first() {
        let now = Instant::now();
        let mut dues: Vec<Instant> = (0..64).map(|_| QuerySchedule::new(INTERVAL, now).next()).collect();
        dues.sort();
        dues.dedup();
        assert!(dues.len() > 48, "64 nodes drew only {} distinct delays", dues.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_query_heard_from_anyone_puts_ours_off() {
        let start = Instant::now();
        let mut schedule = QuerySchedule::new(INTERVAL, start);
        // Someone else queries every interval: we never do.
        for round in 1..=10 {
            tokio::time::advance(INTERVAL).await;
            assert!(Instant::now() < schedule.next(), "round {round}: ours is not due yet");
            schedule.on_query(Instant::now());
        }
        // They stop: ours comes within one and a half intervals.
        let heard = Instant::now();
        assert!(schedule.next() - heard <= INTERVAL * 3 / 2);
    }
}
