//! Secret keys on disk: the gateway's own key and one key per device.
//!
//! Layout under the state directory:
//!
//! ```text
//! <state>/identity.pem            gateway key
//! <state>/devices/<name>.pem      one key per device, named by config
//! ```
//!
//! Files are PKCS#8 PEM, mode 0600, in directories created 0700. They are
//! written atomically (temporary file, fsync, link into place, fsync the
//! directory) so a power cut leaves either no key or a whole one — never a
//! truncated file that would silently change a device's identity.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{IdentityError, Keypair};

/// A device's name as written in a bridge file: `[a-z0-9_-]{1,64}`.
///
/// The name becomes a file name, so the rule is strict: no dots, no
/// slashes, nothing that could leave the `devices/` directory.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceName(String);

impl DeviceName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(IdentityError::BadDeviceName(
                name.chars().take(80).collect(),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceName({})", self.0)
    }
}

/// The keys of one agent, rooted at its state directory.
#[derive(Debug, Clone)]
pub struct Keystore {
    root: PathBuf,
}

impl Keystore {
    /// A keystore in `state_dir`. Nothing is touched until a key is asked for.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: state_dir.into(),
        }
    }

    /// Where the gateway key lives.
    pub fn gateway_key_path(&self) -> PathBuf {
        self.root.join("identity.pem")
    }

    /// Where a device's key lives.
    pub fn device_key_path(&self, device: &DeviceName) -> PathBuf {
        self.root.join("devices").join(format!("{device}.pem"))
    }

    /// Loads the gateway key, creating it on first start.
    pub fn gateway(&self) -> Result<Keypair, IdentityError> {
        KeyFile::load_or_create(&self.gateway_key_path())
    }

    /// Loads a device's key, creating it the first time the device is seen.
    ///
    /// The key depends only on the name, never on which bridge file or in
    /// which order the device appears, and a removed device's key is left in
    /// place, so re-adding the device restores its identity.
    pub fn device(&self, device: &DeviceName) -> Result<Keypair, IdentityError> {
        KeyFile::load_or_create(&self.device_key_path(device))
    }
}

/// Reading and writing one key file.
pub struct KeyFile;

impl KeyFile {
    /// Loads the key at `path`, refusing a file readable by group or others.
    pub fn load(path: &Path) -> Result<Keypair, IdentityError> {
        let io = |action, source| IdentityError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let mut file = fs::File::open(path).map_err(|e| io("cannot open key file", e))?;
        let mode = file
            .metadata()
            .map_err(|e| io("cannot stat key file", e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(IdentityError::InsecurePermissions {
                path: path.to_owned(),
                mode: mode & 0o7777,
            });
        }
        // A PEM Ed25519 key is ~120 bytes; refuse to slurp anything large.
        let mut pem = Zeroizing::new(String::new());
        Read::by_ref(&mut file)
            .take(16 * 1024)
            .read_to_string(&mut pem)
            .map_err(|e| io("cannot read key file", e))?;
        Keypair::from_pkcs8_pem(&pem, path)
    }

    /// Loads the key at `path`, or creates a new one there if there is none.
    pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
        match Self::load(path) {
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let key = Keypair::generate();
                match Self::create(path, &key, false) {
                    Ok(()) => Ok(key),
                    // Another process created it first: theirs wins.
                    Err(IdentityError::AlreadyExists(_)) => Self::load(path),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Writes `key` to `path` atomically with mode 0600, creating missing
    /// parent directories with mode 0700. Without `overwrite`, an existing
    /// file is an error and is left untouched.
    pub fn create(path: &Path, key: &Keypair, overwrite: bool) -> Result<(), IdentityError> {
        let io = |action, p: &Path, source| IdentityError::Io {
            action,
            path: p.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io("cannot create key directory", &dir, e))?;
        if !overwrite && path.exists() {
            return Err(IdentityError::AlreadyExists(path.to_owned()));
        }

        let pem = key.to_pkcs8_pem()?;
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("cannot create key file", &tmp, e))?;
            f.write_all(pem.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io("cannot write key file", &tmp, e))?;
            if overwrite {
                fs::rename(&tmp, path).map_err(|e| io("cannot install key file", path, e))
            } else {
                // link(2) fails if the target exists: an atomic no-clobber.
                fs::hard_link(&tmp, path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        IdentityError::AlreadyExists(path.to_owned())
                    } else {
                        io("cannot install key file", path, e)
                    }
                })
            }
        })();
        let _ = fs::remove_file(&tmp);
        result?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync key directory", &dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn device_names_are_strict() {
        for good in ["meter-1", "a", "sdm120_3", &"x".repeat(64)] {
            assert!(DeviceName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            "Meter",
            "a.pem",
            " a",
            &"x".repeat(65),
            "ü",
        ] {
            assert!(DeviceName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_0600_in_0700_dirs_and_stable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Keystore::new(tmp.path().join("state"));
        let gw = store.gateway().expect("gateway");
        let meter = DeviceName::new("meter").expect("name");
        let dev = store.device(&meter).expect("device");
        assert_ne!(gw.public(), dev.public());

        assert_eq!(mode(&store.gateway_key_path()), 0o600);
        assert_eq!(mode(&store.device_key_path(&meter)), 0o600);
        assert_eq!(mode(&tmp.path().join("state")), 0o700);
        assert_eq!(mode(&tmp.path().join("state/devices")), 0o700);

        // Second start: same identities, nothing rewritten.
        assert_eq!(store.gateway().expect("again").public(), gw.public());
        assert_eq!(store.device(&meter).expect("again").public(), dev.public());
        // No temporary files left behind.
        let leftovers: Vec<_> = fs::read_dir(tmp.path().join("state/devices"))
            .expect("readdir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn group_readable_key_is_refused_with_the_fix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k.pem");
        KeyFile::create(&path, &Keypair::generate(), false).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = KeyFile::load(&path).expect_err("must refuse").to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).expect("chmod");
        assert!(matches!(
            KeyFile::load(&path),
            Err(IdentityError::InsecurePermissions { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(KeyFile::load(&path).is_ok());
    }

    #[test]
    fn create_refuses_to_overwrite_without_force() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k.pem");
        let first = Keypair::generate();
        KeyFile::create(&path, &first, false).expect("create");
        let second = Keypair::generate();
        assert!(matches!(
            KeyFile::create(&path, &second, false),
            Err(IdentityError::AlreadyExists(_))
        ));
        assert_eq!(KeyFile::load(&path).expect("load").public(), first.public());
        KeyFile::create(&path, &second, true).expect("force");
        assert_eq!(
            KeyFile::load(&path).expect("load").public(),
            second.public()
        );
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k.pem");
        fs::write(&path, "not a key").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = KeyFile::load(&path).expect_err("garbage").to_string();
        assert!(err.contains("PKCS#8"), "{err}");
        assert!(err.contains("k.pem"), "{err}");
    }
}
