//! The WebRTC-direct certificate, kept beside the key file
//! (`<key file>.webrtc.pem`, 0600): its hash is in the node's
//! `/webrtc-direct` addresses, which therefore survive a restart.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use p2p_transport::{CertificatePem, NodeConfig};

/// Where the certificate of the identity in `key_file` lives.
pub(crate) fn path_for(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".webrtc.pem");
    PathBuf::from(name)
}

/// The certificate kept for `key_file`, created on first use.
pub(crate) fn load_or_create(key_file: &Path) -> Result<CertificatePem> {
    let path = path_for(key_file);
    match std::fs::read_to_string(&path) {
        Ok(pem) => return Ok(CertificatePem(pem)),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("cannot read {}", path.display()));
        }
        Err(_) => {}
    }
    let pem = NodeConfig::new_webrtc_certificate();
    match crate::keyfile::write_new_private(&path, pem.0.as_bytes()) {
        Ok(()) => Ok(pem),
        // Created meanwhile by another start: that one is the certificate.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(CertificatePem(
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
        )),
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let first = load_or_create(&key).unwrap();
        assert_eq!(load_or_create(&key).unwrap(), first);
        assert!(path_for(&key).ends_with("key.webrtc.pem"));
    }
}
