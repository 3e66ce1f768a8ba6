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
//!
//! One query comes early: a follow-up [`FOLLOW_UP`] to twice that after the
//! start. When many nodes start together, every one of them queries at once
//! and answers every other's query, and nodes busy with that start-up
//! overflow their sockets: the answers they miss would otherwise wait for
//! the next interval (at 64 nodes, 10 % of the pairs found each other only
//! after 19 s). The queries of that start-up burst do not put the follow-up
//! off; a query heard after it (someone else's follow-up) does, so a LAN
//! that starts together sends about one. RFC 6762 §5.2 asks at least 1 s
//! between the first two queries, and growing gaps after.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::time::Instant;

use super::SERVICE_NAME;

/// The start-up follow-up query comes this long after the start, plus a
/// random part of as much again.
pub(crate) const FOLLOW_UP: Duration = Duration::from_secs(3);

/// When this node's next query is due.
#[derive(Debug)]
pub(crate) struct QuerySchedule {
    interval: Duration,
    next: Instant,
    /// While the follow-up is still to come: queries heard before this
    /// instant are the start-up burst and do not put it off.
    burst_until: Option<Instant>,
    random: RandomState,
    draws: u64,
}

impl QuerySchedule {
    /// The first query is the follow-up, between one and two [`FOLLOW_UP`]s
    /// from `now`: at start, `libp2p-mdns` has already queried.
    pub(crate) fn new(interval: Duration, now: Instant) -> Self {
        let mut schedule = Self {
            interval,
            next: now,
            burst_until: Some(now + FOLLOW_UP),
            random: RandomState::new(),
            draws: 0,
        };
        schedule.next = now + FOLLOW_UP + schedule.jitter(FOLLOW_UP);
        schedule
    }

    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// Someone (this node included) asked the LAN at `now`: the answers to
    /// that query refresh us too, so ours waits another jittered interval
    /// (unless it is the start-up burst and our follow-up is still to come).
    pub(crate) fn on_query(&mut self, now: Instant) {
        if self.burst_until.is_some_and(|until| now < until) {
            return;
        }
        self.burst_until = None;
        self.next = now + self.interval + self.jitter(self.interval / 2);
    }

    /// A random part of `spread`.
    fn jitter(&mut self, spread: Duration) -> Duration {
        self.draws += 1;
        let fraction = (self.random.hash_one(self.draws) % 1_000) as u32;
        spread * fraction / 1_000
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
        let start = Instant::now();
        let mut schedule = QuerySchedule::new(INTERVAL, start);
        let now = start + FOLLOW_UP;
        for _ in 0..100 {
            schedule.on_query(now);
            let wait = schedule.next() - now;
            assert!(wait >= INTERVAL && wait <= INTERVAL * 3 / 2, "{wait:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_follow_up_comes_soon_after_the_start_whatever_the_start_up_burst() {
        let start = Instant::now();
        let mut schedule = QuerySchedule::new(INTERVAL, start);
        let due = schedule.next() - start;
        assert!(due >= FOLLOW_UP && due <= FOLLOW_UP * 2, "{due:?}");
        // Every node queries as it starts: none of that puts the follow-up off.
        for _ in 0..30 {
            tokio::time::advance(FOLLOW_UP / 40).await;
            schedule.on_query(Instant::now());
        }
        assert_eq!(schedule.next() - start, due);
        // Someone else's follow-up does: then the interval.
        tokio::time::advance(FOLLOW_UP).await;
        schedule.on_query(Instant::now());
        assert!(schedule.next() - Instant::now() >= INTERVAL);
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
        let mut schedule = QuerySchedule::new(INTERVAL, Instant::now());
        tokio::time::advance(FOLLOW_UP).await;
        schedule.on_query(Instant::now());
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
