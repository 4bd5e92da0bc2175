//! Bridge files: every `*.toml` in `bridges.d/` beside the agent config,
//! one bus per file, validated together. Where the directory is, is the
//! daemon's config to say.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use streembit_bridges::{BridgeFile, Bus};

use crate::identity::DeviceName;

/// A bridge file that parsed and validated.
#[derive(Debug, Clone)]
pub(crate) struct LoadedBridge {
    /// File name (e.g. `sdm120.toml`): the bridge's name.
    pub name: String,
    /// Fingerprint of the file's text, to tell a changed file on reload.
    pub fingerprint: u64,
    /// The bus it describes.
    pub bus: Bus,
}

/// What loading a directory found: the good files and, per broken file,
/// every problem (`file: key `path`: reason`).
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Files that may run.
    pub good: Vec<LoadedBridge>,
    /// Broken files, by file name, with their problems.
    pub broken: BTreeMap<String, Vec<String>>,
    /// What is worth saying about good files: a device file (serial port,
    /// I2C bus) absent now. Such a bridge starts anyway and waits for it.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// Every problem of every file, one per line.
    pub(crate) fn errors(&self) -> Vec<String> {
        self.broken.values().flatten().cloned().collect()
    }
}

/// Reads and validates every `*.toml` in `dir` (a missing directory is
/// simply no bridges). Files are taken in name order, so a device name used
/// twice is reported against the later file.
pub(crate) fn load_dir(dir: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return loaded;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown = path.display().to_string();
        match load_file(&path, &shown) {
            Err(errs) => {
                loaded.broken.insert(name, errs);
            }
            Ok((bus, fingerprint)) => {
                let mut errs = Vec::new();
                for (i, device) in bus.device_names().into_iter().enumerate() {
                    if DeviceName::new(device).is_err() {
                        errs.push(format!(
                            "{shown}: key `devices[{i}].name`: {device:?} cannot name a device identity: use 1 to 64 of a-z, 0-9, '_' and '-'"
                        ));
                    }
                    if let Some(other) = owners.get(device) {
                        errs.push(format!(
                            "{shown}: key `devices[{i}].name`: device {device:?} is already defined in {other}; device names must be unique across bridge files"
                        ));
                    }
                }
                loaded.warnings.extend(absent_paths(&bus, &shown));
                if errs.is_empty() {
                    for device in bus.device_names() {
                        owners.insert(device.to_owned(), name.clone());
                    }
                    loaded.good.push(LoadedBridge {
                        name,
                        fingerprint,
                        bus,
                    });
                } else {
                    loaded.broken.insert(name, errs);
                }
            }
        }
    }
    loaded
}

fn load_file(path: &Path, shown: &str) -> Result<(Bus, u64), Vec<String>> {
    let meta = std::fs::metadata(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    if meta.len() > 1 << 20 {
        return Err(vec![format!(
            "{shown}: larger than 1 MiB; not a bridge file"
        )]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    BridgeFile::from_toml_str(&text)
        .and_then(BridgeFile::into_bus)
        .map(|bus| (bus, h.finish()))
        .map_err(|errs| {
            errs.into_iter()
                .map(|e| format!("{shown}: key `{}`: {}", e.path, e.reason))
                .collect()
        })
}

/// What only the gateway can see: a device file the bus opens (a serial
/// port, an I2C bus) that is absent now. Not an error: a USB adapter
/// plugged in later, or i2c-dev loaded after the agent, must not keep a
/// gateway down; the bridge shows its devices offline and retries.
fn absent_paths(bus: &Bus, shown: &str) -> Vec<String> {
    bus.device_paths()
        .into_iter()
        .filter(|d| !Path::new(&d.path).exists())
        .map(|d| {
            format!(
                "{shown}: key `{}`: {} {} does not exist (yet): its devices stay offline until it appears",
                d.key, d.kind, d.path
            )
        })
        .collect()
}
