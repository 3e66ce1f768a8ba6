//! `p2p-node id`: print the peer id of a key file.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::IdArgs;
use crate::{keyfile, output};

/// Prints the peer id of `--key-file` (the default key file without it), creating the file if missing.
pub(crate) fn id(args: IdArgs) -> Result<ExitCode> {
    let keypair = keyfile::load(args.key_file.as_deref())?;
    output::print_line(&keypair.public().to_peer_id().to_string());
    Ok(ExitCode::SUCCESS)
}
