//! Run bundles: runs with their metrics, curves and latest checkpoint in one file, to carry
//! runs between machines (a GPU box, cluster nodes, the notebook) and to continue a run
//! elsewhere (`import`, then `resume`).
//!
//! Layout: a gzip stream of frames, each a big-endian u32 length and that many bytes.
//! MessagePack frames (they keep NaN losses, which JSON cannot): `header`, then per run a `run` frame followed by its checkpoint `file` frames (each
//! followed by one raw frame of the file's bytes), then `end` with counts and the CRC-32 of
//! every byte before it. A bundle is read and checked completely before anything is written.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, RunId, RunRecord, RunStore, Status};
use crate::train::{EvalCurve, StepMetrics};

pub const BUNDLE_FORMAT: &str = "icl-lab-bundle";
pub const BUNDLE_SCHEMA: u32 = 1;
/// Frames larger than this are refused (a corrupt length would otherwise allocate wildly).
const MAX_FRAME: usize = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: not an icl-lab bundle ({reason})")]
    NotBundle { path: PathBuf, reason: String },
    #[error("{path}: bundle schema {found} is newer than this icl-lab's {supported}; upgrade icl-lab")]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: truncated or corrupt bundle ({reason}); nothing was imported")]
    Truncated { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Frame {
    Header { format: String, schema: u32, created: chrono::DateTime<chrono::Utc>, host: String, version: String },
    Run { record: Box<RunRecord>, metrics: Vec<StepMetrics>, evals: Vec<EvalCurve> },
    /// A checkpoint file of the run before it; its bytes are the next frame.
    File { name: String, len: u64 },
    End { runs: usize, files: usize, crc32: u32 },
}

/// One run read from a bundle.
pub struct BundledRun {
    pub record: RunRecord,
    pub metrics: Vec<StepMetrics>,
    pub evals: Vec<EvalCurve>,
    /// Checkpoint files: name within the checkpoint directory, bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

struct FrameWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> FrameWriter<W> {
    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = (bytes.len() as u32).to_be_bytes();
        self.crc.update(&len);
        self.crc.update(bytes);
        self.out.write_all(&len)?;
        self.out.write_all(bytes)
    }
    fn frame(&mut self, f: &Frame) -> std::io::Result<()> {
        self.raw(&rmp_serde::to_vec_named(f).expect("frames serialise"))
    }
}

/// Which runs of a bundle carry their checkpoint (the bulk of a bundle: weights and optimiser
/// state). A run without one can still be browsed, compared and reported, only not continued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BundleCheckpoints {
    #[default]
    All,
    /// Only runs that did not finish (to resume them elsewhere); finished runs travel light.
    Unfinished,
}

impl std::str::FromStr for BundleCheckpoints {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "unfinished" => Ok(Self::Unfinished),
            other => Err(format!("{other:?}: expected all or unfinished")),
        }
    }
}

/// Writes the runs `ids` of `store` to `path`, each with its checkpoint (via a temporary file,
/// renamed at the end). Returns the number of runs written.
pub fn export(store: &dyn RunStore, ids: &[RunId], path: &Path) -> Result<usize, BundleError> {
    export_with(store, ids, path, BundleCheckpoints::All)
}

/// As `export`, with the checkpoints `checkpoints` says.
pub fn export_with(
    store: &dyn RunStore,
    ids: &[RunId],
    path: &Path,
    checkpoints: BundleCheckpoints,
) -> Result<usize, BundleError> {
    let io = |e: std::io::Error| BundleError::Io { path: path.to_path_buf(), reason: e.to_string() };
    let tmp = path.with_extension("partial");
    let file = File::create(&tmp).map_err(io)?;
    let mut w = FrameWriter { out: GzEncoder::new(BufWriter::new(file), flate2::Compression::fast()), crc: crc32fast::Hasher::new() };
    w.frame(&Frame::Header {
        format: BUNDLE_FORMAT.into(),
        schema: BUNDLE_SCHEMA,
        created: chrono::Utc::now(),
        host: super::host_name(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
    .map_err(io)?;
    let mut files = 0;
    for &id in ids {
        let mut record = store.get(id)?;
        if checkpoints == BundleCheckpoints::Unfinished && record.status == Status::Done {
            record.checkpoint = None;
        }
        let metrics = store.metrics(id)?;
        let evals = store.evals(id)?;
        let ckpt_files = match &record.checkpoint {
            Some(c) => read_checkpoint_files(&store.checkpoint_path(c)).map_err(io)?,
            None => Vec::new(),
        };
        w.frame(&Frame::Run { record: Box::new(record), metrics, evals }).map_err(io)?;
        for (name, bytes) in ckpt_files {
            w.frame(&Frame::File { name, len: bytes.len() as u64 }).map_err(io)?;
            w.raw(&bytes).map_err(io)?;
            files += 1;
        }
    }
    let crc32 = w.crc.clone().finalize();
    w.frame(&Frame::End { runs: ids.len(), files, crc32 }).map_err(io)?;
    let mut buf = w.out.finish().map_err(io)?;
    buf.flush().map_err(io)?;
    buf.get_ref().sync_all().map_err(io)?;
    drop(buf);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(ids.len())
}

fn read_checkpoint_files(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out); // recorded but gone (deleted by hand): the run travels without weights
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_type()?.is_file() {
            out.push((e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path())?));
        }
    }
    Ok(out)
}

/// Reads and checks a whole bundle.
pub fn read(path: &Path) -> Result<Vec<BundledRun>, BundleError> {
    let file = File::open(path).map_err(|e| BundleError::Io { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut input = GzDecoder::new(BufReader::new(file));
    let mut crc = crc32fast::Hasher::new();
    let truncated = |reason: String| BundleError::Truncated { path: path.to_path_buf(), reason };
    let mut next_raw = |crc: &mut crc32fast::Hasher| -> Result<Vec<u8>, String> {
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(|e| format!("reading a frame length: {e}"))?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            return Err(format!("frame of {n} bytes"));
        }
        let mut bytes = vec![0u8; n];
        input.read_exact(&mut bytes).map_err(|e| format!("reading a frame of {n} bytes: {e}"))?;
        crc.update(&len);
        crc.update(&bytes);
        Ok(bytes)
    };

    let first = next_raw(&mut crc)
        .map_err(|reason| BundleError::NotBundle { path: path.to_path_buf(), reason })?;
    match rmp_serde::from_slice::<Frame>(&first) {
        Ok(Frame::Header { format, schema, .. }) if format == BUNDLE_FORMAT => {
            if schema > BUNDLE_SCHEMA {
                return Err(BundleError::NewerSchema { path: path.to_path_buf(), found: schema, supported: BUNDLE_SCHEMA });
            }
        }
        _ => return Err(BundleError::NotBundle { path: path.to_path_buf(), reason: "no bundle header".into() }),
    }
    let mut runs: Vec<BundledRun> = Vec::new();
    let mut n_files = 0;
    loop {
        let before = crc.clone().finalize();
        let bytes = next_raw(&mut crc).map_err(truncated)?;
        let frame: Frame = rmp_serde::from_slice(&bytes).map_err(|e| truncated(format!("bad frame: {e}")))?;
        match frame {
            Frame::Header { .. } => return Err(truncated("a second header".into())),
            Frame::Run { record, metrics, evals } => {
                runs.push(BundledRun { record: *record, metrics, evals, files: Vec::new() })
            }
            Frame::File { name, len } => {
                let data = next_raw(&mut crc).map_err(truncated)?;
                if data.len() as u64 != len || name.contains('/') || name.contains("..") {
                    return Err(truncated(format!("bad file frame {name:?}")));
                }
                let run = runs.last_mut().ok_or_else(|| truncated("a file before any run".into()))?;
                run.files.push((name, data));
                n_files += 1;
            }
            Frame::End { runs: n_runs, files, crc32 } => {
                if crc32 != before || n_runs != runs.len() || files != n_files {
                    return Err(truncated(format!(
                        "end frame says {n_runs} runs, {files} files, crc {crc32:08x}; read {} runs, {n_files} files, crc {before:08x}",
                        runs.len()
                    )));
                }
                // The gzip trailer (its own CRC and length) must be there too, and nothing after.
                let mut rest = Vec::new();
                input.read_to_end(&mut rest).map_err(|e| truncated(format!("after the end frame: {e}")))?;
                if !rest.is_empty() {
                    return Err(truncated(format!("{} bytes after the end frame", rest.len())));
                }
                return Ok(runs);
            }
        }
    }
}

/// What an import did with each run of the bundle.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    /// (id in the bundle's store, new id here)
    pub added: Vec<(RunId, RunId)>,
    /// Runs already here that the bundle carries further (more steps): (id here).
    pub updated: Vec<RunId>,
    /// Runs already here, as far along as the bundle's copy: (id here).
    pub unchanged: Vec<RunId>,
}

impl ImportReport {
    /// The id here of every run the bundle held, whatever became of it.
    pub fn ids_here(&self) -> Vec<RunId> {
        let added = self.added.iter().map(|&(_, here)| here);
        added.chain(self.updated.iter().copied()).chain(self.unchanged.iter().copied()).collect()
    }
}

/// Merges a bundle into `store`: new runs get fresh ids; a run already present (same uid) is
/// replaced only by a copy that went further and only if it is not alive here; nothing else
/// is overwritten. The whole bundle is checked before the first write.
pub fn import(store: &dyn RunStore, path: &Path) -> Result<ImportReport, BundleError> {
    merge(store, read(path)?, path)
}

/// The second half of `import`: merges runs already read (and checked) from the bundle at
/// `path` (named in each new run's origin).
pub fn merge(store: &dyn RunStore, runs: Vec<BundledRun>, path: &Path) -> Result<ImportReport, BundleError> {
    let io = |e: std::io::Error| BundleError::Io { path: path.to_path_buf(), reason: e.to_string() };
    let origin_file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut report = ImportReport::default();
    for run in runs {
        let mut rec = run.record;
        let existing = store.find_uid(&rec.uid)?;
        let existing = match existing {
            Some(id) => Some(store.get(id)?),
            None => None,
        };
        if let Some(here) = &existing {
            if rec.step <= here.step || here.status.is_alive() {
                report.unchanged.push(here.id);
                continue;
            }
        }
        // Runs alive where the bundle was made are not running here.
        if rec.status.is_alive() {
            rec.status = Status::Interrupted;
        }
        rec.pid = None;
        if let Some(c) = &rec.checkpoint {
            rec.checkpoint = if run.files.is_empty() {
                None
            } else {
                Some(write_checkpoint(store.root(), &rec.uid, c, &run.files).map_err(io)?)
            };
        }
        let bundle_id = rec.id;
        if rec.origin.is_none() {
            rec.origin = Some(format!("{origin_file}: run {bundle_id} on {}", rec.host));
        }
        match existing {
            Some(here) => {
                rec.id = here.id;
                rec.tags.extend(here.tags.iter().cloned());
                if !here.note.is_empty() && !rec.note.contains(&here.note) {
                    rec.note = if rec.note.is_empty() { here.note.clone() } else { format!("{}\n{}", here.note, rec.note) };
                }
                let old_ckpt = here.checkpoint.clone();
                store.replace_full(rec.clone(), &run.metrics, &run.evals)?;
                if let (Some(old), Some(new)) = (old_ckpt, &rec.checkpoint) {
                    if old.dir != new.dir {
                        let _ = std::fs::remove_dir_all(store.checkpoint_path(&old));
                    }
                }
                report.updated.push(here.id);
            }
            None => {
                let id = store.insert_full(rec, &run.metrics, &run.evals)?;
                report.added.push((bundle_id, id));
            }
        }
    }
    store.flush()?;
    Ok(report)
}

/// Writes a bundled checkpoint under the store and returns its record (path made local).
fn write_checkpoint(root: &Path, uid: &str, c: &Checkpoint, files: &[(String, Vec<u8>)]) -> std::io::Result<Checkpoint> {
    let rel = format!("checkpoints/{uid}/step-{}", c.step);
    let dir = root.join(&rel);
    let tmp = root.join(format!("{rel}.import"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for (name, bytes) in files {
        std::fs::write(tmp.join(name), bytes)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    Ok(Checkpoint { step: c.step, dir: rel, data_word_pos: c.data_word_pos })
}
