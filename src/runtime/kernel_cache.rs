//! CubeCL's on-disk cache of compiled CUDA kernels (PTX), turned on for every icl-lab process,
//! one directory per GPU architecture, NVRTC version and kernels' build.
//!
//! Without it each process compiles every kernel it launches with NVRTC: 7–14 s before a
//! run's first step, paid again by every run of a sweep (each CUDA slot is its own process)
//! and at every curriculum step that changes a shape. CubeCL keeps PTX on disk only when its
//! runtime config names a cache location, and it reads that config once per process, so it is
//! set here, before a process's first CUDA work (`runtime::train_on`, `bench scan`); commands
//! that never touch CUDA leave the cache directory alone.
//!
//! CubeCL keys a cached kernel by its name and settings only: PTX compiled for another GPU
//! (a home directory shared by nodes of a cluster), by another NVRTC, or from kernels whose
//! code has changed since (an upgraded icl-lab) would be loaded as if it were this one's. So
//! the cache lives in a subdirectory named by all three ([`cache_key`]).
//!
//! A fresh subdirectory starts from the kernels shipped with icl-lab for its key when there
//! are some ([`SEEDS`]): compiled on the GPU machine the project is measured on, they take a
//! first run there from NVRTC's seconds to the driver loading PTX.
//!
//! `ICL_LAB_KERNEL_CACHE`: a directory, or `off`. Default: `<user cache dir>/icl-lab/kernels`
//! (`~/.cache/icl-lab/kernels` on Linux). A `cubecl.toml` / `burn.toml` that names its own
//! cache location wins (and gets no subdirectory).

use std::path::{Path, PathBuf};

pub const KERNEL_CACHE_ENV: &str = "ICL_LAB_KERNEL_CACHE";

/// Where compiled kernels are kept, or `None` when the cache is turned off.
pub fn kernel_cache_dir() -> Option<PathBuf> {
    match std::env::var_os(KERNEL_CACHE_ENV) {
        Some(v) if v == "off" || v == "0" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => directories::ProjectDirs::from("", "", "icl-lab").map(|d| d.cache_dir().join("kernels")),
    }
}

/// Creates `dir` and checks that a file can be written there: CubeCL panics on a cache it
/// cannot write, so an unusable directory turns the cache off instead.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn writable(dir: &std::path::Path) -> bool {
    let probe = dir.join(".icl-lab-probe");
    let ok = std::fs::create_dir_all(dir).is_ok()
        && std::fs::OpenOptions::new().create(true).append(true).open(&probe).is_ok();
    let _ = std::fs::remove_file(probe);
    ok
}

/// The subdirectory of the cache for kernels compiled for compute capability `cc` by NVRTC
/// `nvrtc` from the kernels' source `fingerprint` (`icl_lab_kernels::SOURCE_FINGERPRINT`).
pub fn cache_key(cc: (i32, i32), nvrtc: (i32, i32), fingerprint: &str) -> String {
    format!("sm_{}{}-nvrtc{}.{}-{fingerprint}", cc.0, cc.1, nvrtc.0, nvrtc.1)
}

/// This process's key for CUDA device `device`, or why there is none.
pub fn cache_key_for(device: usize) -> Result<String, String> {
    let cc = super::device::cuda_compute_capability(device)?;
    let nvrtc = super::device::nvrtc_version()?;
    Ok(cache_key(cc, nvrtc, icl_lab_kernels::SOURCE_FINGERPRINT))
}

/// Where CubeCL keeps its PTX under a cache root: `<root>/cuda/<cubecl-common's version>/ptx/`,
/// appending to one chunk file that a process reads whole at start
/// (`cubecl_common::compilation_cache`; the version is pinned in Cargo.toml).
pub fn ptx_chunk(root: &Path) -> PathBuf {
    root.join("cuda").join(CUBECL_VERSION).join("ptx").join("chunk0.cbor")
}

const CUBECL_VERSION: &str = "0.10.0";

/// Kernels shipped with icl-lab: a cache key and the gzipped chunk CubeCL wrote under it on
/// the GPU machine (`tests/gpu/seed_cache.sh`, which says how to add one here). A seed whose
/// fingerprint is not this build's is never installed: delete it when adding its successor.
#[cfg(feature = "cuda")]
pub const SEEDS: &[(&str, &[u8])] = &[(
    // H100 / H200, CUDA 13.0: the `bench models` matrix and every shipped experiment (session 29,
    // Mamba's gate inside the scan, softplus once a step in its backward; the sweep cut at 120 s).
    "sm_90-nvrtc13.0-e5129c46a759b70d",
    include_bytes!("../../kernels/seed/sm_90-nvrtc13.0-e5129c46a759b70d.cbor.gz"),
)];

/// Starts the cache at `root` (the subdirectory for `key`) from the shipped kernels for `key`,
/// when there are some and CubeCL has written nothing there yet. Returns how many bytes of
/// PTX it installed. Never replaces a chunk: it links a complete file into place, which fails
/// if a concurrent process got there first.
pub fn install_seed(root: &Path, key: &str, seeds: &[(&str, &[u8])]) -> std::io::Result<u64> {
    use std::io::{Read, Write};
    let Some((_, gz)) = seeds.iter().find(|(k, _)| *k == key) else { return Ok(0) };
    let chunk = ptx_chunk(root);
    if chunk.exists() {
        return Ok(0);
    }
    let mut ptx = Vec::new();
    flate2::read::GzDecoder::new(*gz).read_to_end(&mut ptx)?;
    let dir = chunk.parent().expect("the chunk has a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".seed-{}", std::process::id()));
    std::fs::File::create(&tmp)?.write_all(&ptx)?;
    let linked = match std::fs::hard_link(&tmp, &chunk) {
        // A file system without hard links: a rename, which would replace a chunk that
        // appeared since the check above (only a few cached kernels lost).
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !chunk.exists() => std::fs::rename(&tmp, &chunk),
        other => other,
    };
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(ptx.len() as u64),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(0),
        Err(e) => Err(e),
    }
}

/// Whether `configure` may say on stderr that it installed the shipped kernels: not while the
/// TUI owns the terminal (a run on the TUI's only CUDA slot trains in its process).
static NOTICES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Keeps `configure` off stderr for the rest of the process (the TUI calls it).
pub fn silence_notices() {
    NOTICES.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Sets CubeCL's runtime config for this process, with the kernel cache when it is usable:
/// the subdirectory for CUDA device `device` ([`cache_key`]), started from the shipped kernels
/// when it is new. Returns the directory it set. Call before any CUDA work; once CubeCL's
/// config is set or read, calls change nothing (and return None).
#[cfg(feature = "cuda")]
pub fn configure(device: usize) -> Option<PathBuf> {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

    // `from_current_dir` unwraps the working directory: with none, keep CubeCL's defaults.
    if std::env::current_dir().is_err() || CubeClRuntimeConfig::storage().lock().is_some() {
        return None;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    let mut chosen = None;
    if config.compilation.cache.is_none() {
        let dir = kernel_cache_dir().zip(cache_key_for(device).ok()).map(|(base, key)| (base.join(&key), key));
        if let Some((dir, key)) = dir.filter(|(d, _)| writable(d)) {
            let notice = match install_seed(&dir, &key, SEEDS) {
                Ok(0) => None,
                Ok(bytes) => Some(format!("kernel cache {} started from the {:.1} MB of compiled kernels shipped for {key}", dir.display(), bytes as f64 / 1e6)),
                Err(e) => Some(format!("could not install the shipped kernels into {}: {e}", dir.display())),
            };
            if let Some(notice) = notice.filter(|_| NOTICES.load(std::sync::atomic::Ordering::Relaxed)) {
                eprintln!("icl-lab: {notice}");
            }
            config.compilation.cache = Some(CacheConfig::File(dir.clone()));
            chosen = Some(dir);
        }
    }
    let mut slot = CubeClRuntimeConfig::storage().lock();
    if slot.is_none() {
        *slot = Some(std::sync::Arc::new(config));
        return chosen;
    }
    None
}

#[cfg(not(feature = "cuda"))]
pub fn configure(_device: usize) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(writable(&dir.path().join("a/b")));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(!writable(&file.join("kernels")), "a path under a file cannot hold a cache");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn the_cache_is_named_in_cubecls_config_once() {
        use cubecl_runtime::config::cache::CacheConfig;
        use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("kernels");
        // No other test reads this variable or CubeCL's config (CPU tests never touch CubeCL).
        std::env::set_var(KERNEL_CACHE_ENV, &cache);
        let chosen = configure(0);
        match cache_key_for(0) {
            // A GPU: the cache is the subdirectory for its key.
            Ok(key) => {
                assert_eq!(chosen.as_deref(), Some(cache.join(&key).as_path()));
                match &CubeClRuntimeConfig::get().compilation.cache {
                    Some(CacheConfig::File(p)) => assert_eq!(p, &cache.join(&key)),
                    other => panic!("cache not set: {other:?}"),
                }
            }
            // No GPU or no NVRTC: no key, so no cache that could hold another machine's PTX.
            Err(_) => {
                assert_eq!(chosen, None);
                assert!(CubeClRuntimeConfig::get().compilation.cache.is_none());
            }
        }
        assert_eq!(configure(0), None, "CubeCL reads its config once: a second call changes nothing");
    }

    #[test]
    fn keys_name_the_architecture_the_compiler_and_the_kernels_build() {
        assert_eq!(cache_key((9, 0), (13, 0), "00ff"), "sm_90-nvrtc13.0-00ff");
        assert_ne!(cache_key((8, 0), (13, 0), "00ff"), cache_key((9, 0), (13, 0), "00ff"));
        assert_ne!(cache_key((9, 0), (12, 8), "00ff"), cache_key((9, 0), (13, 0), "00ff"));
        assert_eq!(icl_lab_kernels::SOURCE_FINGERPRINT.len(), 16);
        assert!(icl_lab_kernels::SOURCE_FINGERPRINT.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// The fields of cubecl-cuda's `PtxCacheEntry`, which CBOR writes as a map by name.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct PtxEntry {
        entrypoint_name: String,
        shared_mem_bytes: usize,
        ptx: Vec<std::ffi::c_char>,
    }

    fn cubecl_cache(root: &Path) -> cubecl_common::compilation_cache::CompilationCache<u128, PtxEntry> {
        use cubecl_common::cache::CacheOption;
        // What cubecl-cuda's CudaContext opens for a cache root.
        cubecl_common::compilation_cache::CompilationCache::new("ptx", CacheOption::default().name("cuda").root(root))
    }

    fn entry(i: u8) -> PtxEntry {
        PtxEntry { entrypoint_name: format!("kernel_{i}"), shared_mem_bytes: usize::from(i) * 64, ptx: vec![b'.' as std::ffi::c_char; 100 + usize::from(i)] }
    }

    #[test]
    fn a_fresh_cache_starts_from_the_shipped_kernels_for_its_key() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        // A chunk as CubeCL writes it, where `ptx_chunk` says it is.
        let made = dir.path().join("made");
        {
            let mut cache = cubecl_cache(&made);
            for i in 0..3 {
                cache.insert(u128::from(i) << 100 | 7, entry(i)).unwrap();
            }
        }
        let chunk = std::fs::read(ptx_chunk(&made)).expect("CubeCL writes its PTX where ptx_chunk says");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&chunk).unwrap();
        let gz = gz.finish().unwrap();
        let seeds: &[(&str, &[u8])] = &[("sm_90-nvrtc13.0-abc", &gz)];

        let fresh = dir.path().join("fresh");
        assert_eq!(install_seed(&fresh, "sm_80-nvrtc13.0-abc", seeds).unwrap(), 0, "another key: nothing");
        assert!(!ptx_chunk(&fresh).exists());
        assert_eq!(install_seed(&fresh, "sm_90-nvrtc13.0-abc", seeds).unwrap(), chunk.len() as u64);
        let cache = cubecl_cache(&fresh);
        for i in 0..3 {
            assert_eq!(cache.get(&(u128::from(i) << 100 | 7)), Some(&entry(i)), "kernel {i} read back by CubeCL");
        }
        assert_eq!(cache.get(&5), None);
        drop(cache);
        // Only one process's file leaves no temporary behind.
        let names: Vec<_> = std::fs::read_dir(ptx_chunk(&fresh).parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().starts_with(".seed")), "{names:?}");

        // A cache CubeCL has written to is never replaced.
        let used = dir.path().join("used");
        cubecl_cache(&used).insert(42, entry(9)).unwrap();
        let before = std::fs::read(ptx_chunk(&used)).unwrap();
        assert_eq!(install_seed(&used, "sm_90-nvrtc13.0-abc", seeds).unwrap(), 0);
        assert_eq!(std::fs::read(ptx_chunk(&used)).unwrap(), before);

        // A damaged seed is an error, and leaves no chunk for CubeCL to trip on.
        let bad: &[(&str, &[u8])] = &[("k", b"not gzip")];
        let other = dir.path().join("other");
        assert!(install_seed(&other, "k", bad).is_err());
        assert!(!ptx_chunk(&other).exists());
    }

    /// A change to kernels/src (comments included) or to burn's and CubeCL's versions makes a
    /// new fingerprint, and the shipped kernels then go unused: every first run compiles again
    /// (10-20 s a shape). So a kernel change lands with its seed, made on the GPU machine.
    #[cfg(feature = "cuda")]
    #[test]
    fn a_shipped_seed_is_for_these_kernels() {
        let fingerprint = icl_lab_kernels::SOURCE_FINGERPRINT;
        let keys: Vec<_> = SEEDS.iter().map(|(key, _)| *key).collect();
        assert!(
            keys.iter().any(|key| key.ends_with(&format!("-{fingerprint}"))),
            "no shipped kernel seed for these kernels ({fingerprint}; shipped: {keys:?}): make one with tests/gpu/seed_cache.sh on the GPU machine \
             (tests/gpu/README.md), or, for a change that must land without one, drop the stale seed from SEEDS and this test with it"
        );
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn the_shipped_kernels_are_whole_ptx_entries_under_well_formed_keys() {
        use std::io::Read;
        #[derive(serde::Deserialize)]
        struct Entry {
            key: u128,
            value: PtxEntry,
        }
        assert!(!SEEDS.is_empty());
        for (key, gz) in SEEDS {
            let parts: Vec<_> = key.split('-').collect();
            assert!(parts.len() == 3 && parts[0].starts_with("sm_") && parts[1].starts_with("nvrtc"), "{key}");
            assert!(parts[2].len() == 16 && parts[2].chars().all(|c| c.is_ascii_hexdigit()), "{key}");
            let mut chunk = Vec::new();
            flate2::read::GzDecoder::new(*gz).read_to_end(&mut chunk).unwrap();
            let mut cursor = std::io::Cursor::new(&chunk);
            // Processes compiling at once may each append a kernel (CubeCL reads the last). Their
            // PTX may differ: CubeCL's code generation does not fix the order of shared-memory
            // buffers or of parameter loads (31 of the first seed's 541 entries, read side by
            // side: the same stores and loads, placed differently). Same entry point and size.
            let mut keys = std::collections::HashMap::new();
            while (cursor.position() as usize) < chunk.len() {
                let entry: Entry = ciborium::de::from_reader(&mut cursor).unwrap_or_else(|e| panic!("{key}: entry {}: {e}", keys.len()));
                let ptx: Vec<u8> = entry.value.ptx.iter().map(|&c| c as u8).collect();
                let ptx = String::from_utf8_lossy(&ptx);
                assert!(ptx.contains(".version") && ptx.contains(&format!(".target {}", parts[0])), "{key}: {} is not PTX for {}", entry.value.entrypoint_name, parts[0]);
                assert!(ptx.contains(&entry.value.entrypoint_name), "{key}: entry point {} missing", entry.value.entrypoint_name);
                let name = entry.value.entrypoint_name.clone();
                if let Some(earlier) = keys.insert(entry.key, entry.value.clone()) {
                    let same = (&earlier.entrypoint_name, earlier.shared_mem_bytes);
                    assert_eq!(same, (&name, entry.value.shared_mem_bytes), "{key}: kernel {:x} twice, different", entry.key);
                }
            }
            assert!(keys.len() > 100, "{key}: only {} kernels", keys.len());
        }
    }
}
