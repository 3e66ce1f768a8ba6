//! The node's identity on disk: created once (mode 0600), locked while a node uses it.
//!
//! A key file holds the protobuf encoding of a libp2p keypair. It is created
//! complete or not at all (written aside, then hard-linked into place), so a
//! concurrent reader never sees half a key. A file that does not decode is an
//! error naming it: replacing it would silently change the node's identity.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use p2p_transport::libp2p::identity::Keypair;

/// How many `key-N` siblings of the default key file a node tries before giving up.
const MAX_DEFAULT_SIBLINGS: usize = 64;

/// A key a running node uses, with the lock that keeps other nodes off it.
#[derive(Debug)]
pub(crate) struct HeldKey {
    /// The identity.
    pub(crate) keypair: Keypair,
    /// Where it is stored.
    pub(crate) path: PathBuf,
    /// Holds the exclusive advisory lock until dropped (or the process ends).
    _lock: File,
}

/// The default key file: `p2p-node/key` under the user's data directory.
pub(crate) fn default_path() -> Result<PathBuf> {
    data_dir()
        .map(|dir| dir.join("p2p-node").join("key"))
        .ok_or_else(|| anyhow!("cannot find the user's data directory (no HOME); pass --key-file"))
}

/// The XDG data directory (`$XDG_DATA_HOME`, else `~/.local/share`), as the
/// `dirs` crate finds it on Linux; `~/Library/Application Support` on macOS.
fn data_dir() -> Option<PathBuf> {
    if cfg!(not(target_os = "macos"))
        && let Some(dir) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|d| d.is_absolute())
    {
        return Some(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute())?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        home.join(".local").join("share")
    })
}

/// Loads (creating if missing) and locks the key of a node about to run.
///
/// With an explicit `path`, a key locked by another process is an error.
/// Without one, the default key file is used, or, while another node holds
/// it, the first of `key-1`, `key-2`, ... that no node holds: two nodes
/// started on one machine get two identities.
pub(crate) fn load_locked(explicit: Option<&Path>) -> Result<HeldKey> {
    if let Some(path) = explicit {
        return match try_hold(path)? {
            Some(held) => Ok(held),
            None => bail!("key file {} is in use by another running node", path.display()),
        };
    }
    let primary = default_path()?;
    for n in 0..=MAX_DEFAULT_SIBLINGS {
        let path = if n == 0 { primary.clone() } else { sibling(&primary, n) };
        if let Some(held) = try_hold(&path)? {
            return Ok(held);
        }
    }
    bail!(
        "{} and its {MAX_DEFAULT_SIBLINGS} numbered siblings are all in use by running nodes; pass --key-file",
        primary.display()
    )
}

/// Loads the key at `path` (default: the default key file), creating it if
/// missing, without locking it: for printing an identity.
pub(crate) fn load(path: Option<&Path>) -> Result<Keypair> {
    let path = match path {
        Some(path) => path.to_owned(),
        None => default_path()?,
    };
    ensure_exists(&path)?;
    let mut file = File::open(&path).with_context(|| format!("cannot open key file {}", path.display()))?;
    read_key(&mut file, &path)
}

/// `key` → `key-<n>`.
fn sibling(primary: &Path, n: usize) -> PathBuf {
    let mut name = primary.file_name().unwrap_or_default().to_owned();
    name.push(format!("-{n}"));
    primary.with_file_name(name)
}

/// The key at `path`, locked; `None` if another process holds the lock.
fn try_hold(path: &Path) -> Result<Option<HeldKey>> {
    ensure_exists(path)?;
    let mut file = File::open(path).with_context(|| format!("cannot open key file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock key file {}", path.display()));
        }
    }
    let keypair = read_key(&mut file, path)?;
    Ok(Some(HeldKey { keypair, path: path.to_owned(), _lock: file }))
}

fn read_key(file: &mut File, path: &Path) -> Result<Keypair> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(|| format!("cannot read key file {}", path.display()))?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|err| {
        anyhow!(
            "key file {} is not a valid p2p-node key ({err}); it was left as it is: \
             move it away to get a new identity, or pass another --key-file",
            path.display()
        )
    })
}

/// Creates a key file with a fresh Ed25519 key at `path` unless one exists.
fn ensure_exists(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let bytes = Keypair::generate_ed25519().to_protobuf_encoding().context("cannot encode a new key")?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = write_new_private(&tmp, &bytes).and_then(|()| match fs::hard_link(&tmp, path) {
        // Another process created it first: its key is the one.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        // No hard links on this file system: create it in place, still never clobbering.
        Err(_) => match write_new_private(path, &bytes) {
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        },
        Ok(()) => Ok(()),
    });
    let _ = fs::remove_file(&tmp);
    written.with_context(|| format!("cannot create key file {}", path.display()))
}

/// Writes `bytes` to a file that must not exist yet, readable by its owner only.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("key");
        let first = load(Some(&path)).unwrap();
        let again = load(Some(&path)).unwrap();
        assert_eq!(first.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_corrupt_key_is_an_error_naming_the_file_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, b"not a key").unwrap();
        for err in [load(Some(&path)).unwrap_err(), load_locked(Some(&path)).unwrap_err()] {
            assert!(format!("{err:#}").contains(&path.display().to_string()), "{err:#}");
        }
        assert_eq!(fs::read(&path).unwrap(), b"not a key");
    }

    #[test]
    fn a_held_key_is_not_held_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let held = load_locked(Some(&path)).unwrap();
        let err = load_locked(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        // Reading the identity does not need the lock.
        assert_eq!(load(Some(&path)).unwrap().public(), held.keypair.public());
        drop(held);
        load_locked(Some(&path)).unwrap();
    }

    #[test]
    fn siblings_are_numbered() {
        assert_eq!(sibling(Path::new("/d/p2p-node/key"), 2), Path::new("/d/p2p-node/key-2"));
    }
}
