use std::time::Duration;

use clap::CommandFactory;

use super::*;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("p2p-node").chain(args.iter().copied())).expect("valid args")
}

#[test]
fn the_cli_is_consistent() {
    Cli::command().debug_assert();
}

/// Fails if a default shown by the CLI is not the library's: every field
/// of the config the CLI builds with no flags is compared.
#[test]
fn an_external_ttl_not_longer_than_the_interval_is_refused() {
    assert!(parse(&[]).run.check().is_ok());
    let err = parse(&["--interval", "60s"]).run.check().unwrap_err().to_string();
    assert!(err.contains("--external-ttl"), "{err}");
    assert!(parse(&["--interval", "0s"]).run.check().is_err());
    assert!(parse(&["--interval", "30s", "--external-ttl", "2m"]).run.check().is_ok());
}

#[test]
fn defaults_are_the_libraries_defaults() {
    let cli = parse(&[]);
    assert!(cli.command.is_none());
    assert_eq!(cli.run.service.limits(), Limits::default());
    assert_eq!(cli.run.node_config(), NodeConfig::default());
    assert_eq!(cli.run.interval.0, Duration::from_secs(5));

    let greet = match parse(&["greet", "/ip4/127.0.0.1/udp/1/quic-v1"]).command {
        Some(Command::Greet(greet)) => greet,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(greet.timeout.0, NodeConfig::default().request_timeout);
}

#[test]
fn flags_reach_the_node_config() {
    let cli = parse(&[
        "--no-mdns",
        "--no-greet-v2",
        "--idle-timeout",
        "3s",
        "--max-connections",
        "0",
        "--max-connections-per-peer",
        "2",
        "--external-threshold",
        "5",
        "--external-allow-loopback",
        "--external-addr",
        "/ip4/192.0.2.1/tcp/4001",
        "--relay-server",
        "--bootstrap",
        "/ip4/192.0.2.2/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
    ]);
    let config = cli.run.node_config();
    assert!(config.relay_server);
    assert_eq!(config.bootstrap.len(), 1);
    assert!(!config.mdns && !config.greet_v2);
    assert_eq!(config.idle_timeout, Duration::from_secs(3));
    assert_eq!((config.max_connections, config.max_connections_per_peer), (None, Some(2)));
    assert_eq!((config.external.threshold, config.external.allow_loopback), (5, true));
    assert_eq!(config.external.operator_addrs, vec!["/ip4/192.0.2.1/tcp/4001".parse::<Multiaddr>().unwrap()]);
}

/// The debug hooks are in a binary built with `--features debug-hooks`, and in no other.
#[test]
fn the_debug_flags_exist_only_with_debug_hooks() {
    let peer = p2p_transport::libp2p::PeerId::random().to_string();
    let parsed = Cli::try_parse_from(["p2p-node", "run", "--debug-stall-peer", &peer]);
    assert_eq!(parsed.is_ok(), cfg!(feature = "debug-hooks"), "{parsed:?}");
    let addr = "/ip4/10.0.0.1/udp/1/quic-v1";
    let parsed = Cli::try_parse_from(["p2p-node", "run", "--debug-dial-on-usr1", addr]);
    assert_eq!(parsed.is_ok(), cfg!(feature = "debug-hooks"), "{parsed:?}");
}

#[test]
fn run_flags_parse_with_and_without_the_subcommand() {
    for prefix in [&[][..], &["run"][..]] {
        let mut args = prefix.to_vec();
        args.extend([
            "--no-mdns",
            "--interval",
            "200ms",
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "--handler-timeout",
            "0s",
            "--log-format",
            "json",
        ]);
        let cli = parse(&args);
        let run = match cli.command {
            Some(Command::Run(run)) => *run,
            None => cli.run,
            other => panic!("unexpected {other:?}"),
        };
        assert!(run.no_mdns);
        assert_eq!(run.interval.0, Duration::from_millis(200));
        assert_eq!(run.listen.len(), 1);
        assert_eq!(run.service.limits().request_timeout, None);
        assert_eq!(cli.log_format, LogFormat::Json);
    }
}

#[test]
fn a_bootstrap_address_must_name_its_peer() {
    let bare = "/ip4/192.0.2.2/udp/4001/quic-v1";
    assert!(Cli::try_parse_from(["p2p-node", "run", "--bootstrap", bare]).is_err());
    assert!(
        Cli::try_parse_from([
            "p2p-node",
            "greet",
            "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
            "--bootstrap",
            bare
        ])
        .is_err()
    );
}

/// The node reads durations the way `p2p-fault` does: with units, or plain seconds.
#[test]
fn durations_take_units_or_plain_seconds() {
    let run = parse(&["--interval", "2.5", "--ban-window", "1m 30s"]).run;
    assert_eq!(run.interval.0, Duration::from_millis(2500));
    assert_eq!(run.transport.ban_window.0, Duration::from_secs(90));
}
