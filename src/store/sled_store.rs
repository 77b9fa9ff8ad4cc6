//! `RunStore` on sled 0.34: one tree per kind of record, keys big-endian so scans come back
//! in id and step order.
//!
//! | tree      | key                 | value                    |
//! |-----------|---------------------|--------------------------|
//! | `meta`    | `schema`, `next_id` | u32 / u64, big-endian    |
//! | `runs`    | id                  | `RunRecord`              |
//! | `metrics` | id ++ step          | `StepMetrics`            |
//! | `evals`   | id ++ step          | `EvalCurve`              |
//!
//! Values are MessagePack with field names (new optional fields stay readable).
//! | `uids`    | uid                 | id                       |
//! | `alive`   | id                  | (empty): queued/running  |

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;
use serde::de::DeserializeOwned;

use super::home::StoreHome;
use super::{host_name, NewRun, Result, RunId, RunRecord, RunStore, Status, StoreError, SCHEMA_VERSION};
use crate::train::{EvalCurve, StepMetrics};

pub struct SledStore {
    home: StoreHome,
    db: sled::Db,
    runs: sled::Tree,
    metrics: sled::Tree,
    evals: sled::Tree,
    uids: sled::Tree,
    /// Ids of queued and running runs, so recovery on open does not read every record.
    alive: sled::Tree,
    meta: sled::Tree,
    /// Serialises read-modify-write of run records within this process (the lock keeps
    /// other processes out).
    edit: Mutex<()>,
}

fn run_key(id: RunId) -> [u8; 8] {
    id.to_be_bytes()
}

fn series_key(id: RunId, step: usize) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&(step as u64).to_be_bytes());
    k
}

/// Values are MessagePack with field names: compact, fast, and (unlike JSON) it keeps the NaN
/// and infinite losses of diverged runs.
fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("store values serialise")
}

fn decode<T: DeserializeOwned>(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt { what: what(), reason: e.to_string() })
}

impl SledStore {
    /// Opens (or creates) the store at `root`, taking its lock. Runs left queued or running by
    /// a process that died are marked interrupted.
    pub fn open(root: &Path) -> Result<SledStore> {
        let store = Self::open_raw(root)?;
        store.recover()?;
        Ok(store)
    }

    /// Opens a copy of a store another process holds, as it is: its live runs stay running.
    pub fn open_snapshot(root: &Path) -> Result<SledStore> {
        Self::open_raw(root)
    }

    fn open_raw(root: &Path) -> Result<SledStore> {
        let home = StoreHome::acquire(root)?;
        let db = sled::Config::new()
            .path(home.db_path())
            // Commit points flush explicitly; the background flush only bounds what a crash
            // between them can lose.
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| StoreError::Open { path: root.to_path_buf(), reason: e.to_string() })?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema")? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    what: "meta/schema".into(),
                    reason: format!("{} bytes", v.len()),
                })?);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: root.to_path_buf(), found, supported: SCHEMA_VERSION });
                }
            }
            None => {
                meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        let store = SledStore {
            runs: db.open_tree("runs")?,
            metrics: db.open_tree("metrics")?,
            evals: db.open_tree("evals")?,
            uids: db.open_tree("uids")?,
            alive: db.open_tree("alive")?,
            meta,
            db,
            home,
            edit: Mutex::new(()),
        };
        Ok(store)
    }

    /// Marks runs that a dead process left alive as interrupted.
    fn recover(&self) -> Result<()> {
        let me = std::process::id();
        let alive: Vec<RunId> = self
            .alive
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| k.as_ref().try_into().ok().map(u64::from_be_bytes)))
            .collect();
        for id in alive {
            let Ok(rec) = self.get(id) else {
                self.alive.remove(run_key(id))?;
                continue;
            };
            if rec.status.is_alive() && rec.pid != Some(me) {
                self.update(rec.id, &mut |r| {
                    r.status = Status::Interrupted;
                    r.pid = None;
                })?;
            }
        }
        self.flush()
    }

    fn next_id(&self) -> Result<RunId> {
        let v = self.meta.update_and_fetch("next_id", |old| {
            let n = old.and_then(|o| o.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0) + 1;
            Some(n.to_be_bytes().to_vec())
        })?;
        Ok(u64::from_be_bytes(v.expect("just set").as_ref().try_into().expect("8 bytes")))
    }

    fn put_record(&self, rec: &RunRecord) -> Result<()> {
        self.runs.insert(run_key(rec.id), encode(rec))?;
        if rec.status.is_alive() {
            self.alive.insert(run_key(rec.id), &[])?;
        } else {
            self.alive.remove(run_key(rec.id))?;
        }
        Ok(())
    }

    fn series_batch(id: RunId, metrics: &[StepMetrics], evals: &[EvalCurve]) -> (sled::Batch, sled::Batch) {
        let mut m = sled::Batch::default();
        for p in metrics {
            m.insert(&series_key(id, p.step), encode(p));
        }
        let mut e = sled::Batch::default();
        for c in evals {
            e.insert(&series_key(id, c.step), encode(c));
        }
        (m, e)
    }

    /// Removes the run's metric points and curves with steps from `from` on.
    fn remove_series_from(&self, id: RunId, from: usize) -> Result<()> {
        let (start, end) = (series_key(id, from), series_key(id + 1, 0));
        for tree in [&self.metrics, &self.evals] {
            let mut batch = sled::Batch::default();
            for k in tree.range(start..end).keys() {
                batch.remove(k?);
            }
            tree.apply_batch(batch)?;
        }
        Ok(())
    }

    fn clear_series(&self, id: RunId) -> Result<()> {
        self.remove_series_from(id, 0)
    }

    pub fn db_size_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

impl RunStore for SledStore {
    fn root(&self) -> &Path {
        &self.home.root
    }

    fn create_run(&self, new: NewRun) -> Result<RunRecord> {
        let id = self.next_id()?;
        let rec = RunRecord {
            id,
            uid: uuid::Uuid::new_v4().simple().to_string(),
            spec: new.spec,
            status: Status::Queued,
            created: Utc::now(),
            started: None,
            finished: None,
            device: None,
            host: host_name(),
            pid: Some(std::process::id()),
            git_commit: new.git_commit,
            params: None,
            flops_per_token: None,
            step: 0,
            last: None,
            final_error: None,
            final_baselines: Default::default(),
            train_s: 0.0,
            tags: new.tags,
            note: String::new(),
            checkpoint: None,
            origin: None,
        };
        self.put_record(&rec)?;
        self.uids.insert(rec.uid.as_bytes(), &run_key(id))?;
        self.flush()?;
        Ok(rec)
    }

    fn get(&self, id: RunId) -> Result<RunRecord> {
        let bytes = self.runs.get(run_key(id))?.ok_or(StoreError::NoRun(id))?;
        decode(|| format!("run {id}"), &bytes)
    }

    fn update(&self, id: RunId, edit: &mut dyn FnMut(&mut RunRecord)) -> Result<RunRecord> {
        let _guard = self.edit.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.get(id)?;
        edit(&mut rec);
        rec.id = id;
        self.put_record(&rec)?;
        Ok(rec)
    }

    fn list(&self) -> Result<Vec<RunRecord>> {
        self.runs
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(|| format!("run key {k:?}"), &v)
            })
            .collect()
    }

    fn append_metrics(&self, id: RunId, points: &[StepMetrics]) -> Result<()> {
        let (batch, _) = Self::series_batch(id, points, &[]);
        self.metrics.apply_batch(batch)?;
        Ok(())
    }

    fn metrics_after(&self, id: RunId, after: usize) -> Result<Vec<StepMetrics>> {
        let start = series_key(id, after.saturating_add(1));
        let end = series_key(id + 1, 0);
        self.metrics
            .range(start..end)
            .map(|kv| {
                let (_, v) = kv?;
                decode(|| format!("metric of run {id}"), &v)
            })
            .collect()
    }

    fn rewind(&self, id: RunId, step: usize) -> Result<()> {
        let start = series_key(id, step.saturating_add(1));
        self.remove_series_from(id, step.saturating_add(1))?;
        let last = self.metrics.range(series_key(id, 0)..start).next_back().transpose()?;
        let last: Option<StepMetrics> = match last {
            Some((_, v)) => Some(decode(|| format!("metric of run {id}"), &v)?),
            None => None,
        };
        self.update(id, &mut |r| {
            r.step = step;
            r.last = last.clone();
        })?;
        Ok(())
    }

    fn put_eval(&self, id: RunId, curve: &EvalCurve) -> Result<()> {
        let (_, batch) = Self::series_batch(id, &[], std::slice::from_ref(curve));
        self.evals.apply_batch(batch)?;
        Ok(())
    }

    fn evals(&self, id: RunId) -> Result<Vec<EvalCurve>> {
        self.evals
            .scan_prefix(run_key(id))
            .map(|kv| {
                let (_, v) = kv?;
                decode(|| format!("curve of run {id}"), &v)
            })
            .collect()
    }

    fn find_uid(&self, uid: &str) -> Result<Option<RunId>> {
        Ok(self.uids.get(uid.as_bytes())?.and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    fn delete(&self, id: RunId) -> Result<()> {
        let rec = self.get(id)?;
        self.clear_series(id)?;
        self.uids.remove(rec.uid.as_bytes())?;
        self.alive.remove(run_key(id))?;
        self.runs.remove(run_key(id))?;
        self.flush()?;
        let dir = self.root().join("checkpoints").join(&rec.uid);
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn insert_full(&self, mut rec: RunRecord, metrics: &[StepMetrics], evals: &[EvalCurve]) -> Result<RunId> {
        let id = self.next_id()?;
        rec.id = id;
        let (m, e) = Self::series_batch(id, metrics, evals);
        self.metrics.apply_batch(m)?;
        self.evals.apply_batch(e)?;
        // The record last: a run is visible only once its series are in.
        self.put_record(&rec)?;
        self.uids.insert(rec.uid.as_bytes(), &run_key(id))?;
        Ok(id)
    }

    fn replace_full(&self, rec: RunRecord, metrics: &[StepMetrics], evals: &[EvalCurve]) -> Result<()> {
        self.clear_series(rec.id)?;
        let (m, e) = Self::series_batch(rec.id, metrics, evals);
        self.metrics.apply_batch(m)?;
        self.evals.apply_batch(e)?;
        self.put_record(&rec)
    }
}

impl SledStore {
    /// The absolute path of the store directory.
    pub fn path(&self) -> PathBuf {
        self.home.root.clone()
    }
}
