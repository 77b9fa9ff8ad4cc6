//! Where the store lives and who holds it: the directory layout, its marker file and the
//! process lock.
//!
//! ```text
//! <home>/store.json     {"format": "icl-lab-store", "schema": 1}
//! <home>/lock           pid of the process holding the store (flock'ed while held)
//! <home>/db/            sled
//! <home>/checkpoints/   <run uid>/step-<N>/{model.bin, optim.bin}
//! <home>/autotune/      CubeCL's autotune cache (when autotune is on)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use super::{Result, StoreError, SCHEMA_VERSION};

const MARKER: &str = "store.json";
const FORMAT: &str = "icl-lab-store";

/// The default store directory: `$ICL_LAB_HOME`, else the XDG data dir
/// (`~/.local/share/icl-lab` on Linux).
pub fn default_home() -> PathBuf {
    if let Some(home) = std::env::var_os("ICL_LAB_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    directories::ProjectDirs::from("", "", "icl-lab")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".icl-lab"))
}

#[derive(Serialize, Deserialize)]
struct Marker {
    format: String,
    schema: u32,
}

/// A store directory held by this process: the lock is released when it is dropped
/// (and by the kernel if the process dies).
#[derive(Debug)]
pub struct StoreHome {
    pub root: PathBuf,
    _lock: File,
}

impl StoreHome {
    /// Checks that `root` is a store (or creates one where nothing is) and takes its lock.
    /// A file, a foreign directory or a newer schema is refused without touching anything.
    /// A failure of the file system (no permission, no such parent) names the store.
    pub fn acquire(root: &Path) -> Result<StoreHome> {
        Self::acquire_at(root).map_err(|e| match e {
            StoreError::Io(io) => StoreError::Open { path: root.to_path_buf(), reason: io.to_string() },
            other => other,
        })
    }

    fn acquire_at(root: &Path) -> Result<StoreHome> {
        let root = root.to_path_buf();
        if root.is_file() {
            return Err(StoreError::IsFile { path: root });
        }
        let marker_path = root.join(MARKER);
        if root.is_dir() && !marker_path.exists() {
            let empty = fs::read_dir(&root)?.next().is_none();
            if !empty {
                return Err(StoreError::Foreign { path: root });
            }
        }
        if marker_path.exists() {
            let text = fs::read_to_string(&marker_path)?;
            let marker: Marker = serde_json::from_str(&text)
                .map_err(|e| StoreError::BadMarker { path: marker_path.clone(), reason: e.to_string() })?;
            if marker.format != FORMAT {
                return Err(StoreError::BadMarker {
                    path: marker_path,
                    reason: format!("format is {:?}, expected {FORMAT:?}", marker.format),
                });
            }
            if marker.schema > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema { path: root, found: marker.schema, supported: SCHEMA_VERSION });
            }
        }
        fs::create_dir_all(&root)?;
        let mut lock = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(root.join("lock"))?;
        if lock.try_lock_exclusive().is_err() {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            let pid = if pid.trim().is_empty() { "?".to_string() } else { pid.trim().to_string() };
            return Err(StoreError::InUse { pid, path: root });
        }
        lock.set_len(0)?;
        lock.seek(SeekFrom::Start(0))?;
        write!(lock, "{}", std::process::id())?;
        lock.flush()?;
        if !marker_path.exists() {
            let tmp = root.join("store.json.tmp");
            fs::write(&tmp, serde_json::to_string(&Marker { format: FORMAT.into(), schema: SCHEMA_VERSION }).expect("marker"))?;
            fs::rename(&tmp, &marker_path)?;
        }
        Ok(StoreHome { root, _lock: lock })
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    pub fn autotune_dir(root: &Path) -> PathBuf {
        root.join("autotune")
    }
}
