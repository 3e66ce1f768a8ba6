//! The tools library of p2p-node: load generation, latency histograms,
//! reports, and client nodes connected to a target. `p2p-node bench`, the
//! `p2p-fault` client and the transport's benchmark are built on it.
//!
//! - [`load`]: closed-loop and paced load over any greet service ([`run`]);
//!   a paced request sent late behind a slow answer counts from its due time
//!   (no coordinated omission).
//! - [`histogram`]: hdrhistogram latencies in microseconds, and how they read.
//! - [`report`]: a bench run's summary, as lines for people and as JSON.
//! - [`connect`]: `K` client nodes, each with one connection to the target.
//! - [`progress`]: a progress line on stderr.
//! - [`duration`]: durations on the tools' command lines ([`parse_duration`]).
//!
//! ```no_run
//! # async fn example(target: p2p_transport::libp2p::Multiaddr) {
//! use std::time::Duration;
//! use p2p_load::{ClientOptions, Identify, LoadConfig, connect_clients};
//! use p2p_transport::GreetVersion;
//!
//! let options = ClientOptions {
//!     version: GreetVersion::Auto,
//!     request_timeout: Duration::from_secs(10),
//!     connect_timeout: Duration::from_secs(60),
//!     identify: Identify::AtMost(Duration::from_secs(2)),
//!     message: "load".into(),
//!     bootstrap: Vec::new(),
//! };
//! let clients = connect_clients::<p2p_protocol::Greet>(&target, 4, &options, Default::default()).await;
//! let config = LoadConfig { concurrency: 64, rate_per_sec: Some(1000.0), ..LoadConfig::default() };
//! let report = p2p_load::run(clients.services.clone(), &config, Default::default()).await;
//! println!("{} ok, p99 {:?}", report.ok, report.latency(0.99));
//! clients.shutdown().await;
//! # }
//! ```

pub mod connect;
mod cpu;
pub mod duration;
pub mod histogram;
pub mod load;
pub mod progress;
pub mod raw;
pub mod report;

pub use connect::{
    ClientNode, ClientOptions, Clients, Identify, connect_client, connect_clients, target_peer,
};
pub use cpu::{measure as measure_cpu, process_cpu};
pub use duration::{HumanDuration, parse_duration};
pub use load::{LoadConfig, LoadReport, OK, Sample, error_key, run, run_with};
pub use progress::Progress;
pub use raw::RawPeer;
pub use report::Summary;
