//! CubeCL's on-disk cache of compiled CUDA kernels (PTX), turned on for every icl-lab process.
//!
//! Without it each process compiles every kernel it launches with NVRTC: 7–14 s before a
//! run's first step, paid again by every run of a sweep (each CUDA slot is its own process)
//! and at every curriculum step that changes a shape. CubeCL keeps PTX on disk only when its
//! runtime config names a cache location, and it reads that config once per process, so it is
//! set here, before a process's first CUDA work (`runtime::train_on`, `bench scan`); commands
//! that never touch CUDA leave the cache directory alone.
//!
//! `ICL_LAB_KERNEL_CACHE`: a directory, or `off`. Default: `<user cache dir>/icl-lab/kernels`
//! (`~/.cache/icl-lab/kernels` on Linux). A `cubecl.toml` / `burn.toml` that names its own
//! cache location wins.

use std::path::PathBuf;

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
fn writable(dir: &std::path::Path) -> bool {
    let probe = dir.join(".icl-lab-probe");
    let ok = std::fs::create_dir_all(dir).is_ok()
        && std::fs::OpenOptions::new().create(true).append(true).open(&probe).is_ok();
    let _ = std::fs::remove_file(probe);
    ok
}

/// Sets CubeCL's runtime config for this process, with the kernel cache when it is usable.
/// Returns the cache directory it set. Call before any CUDA work; once CubeCL's config is
/// set or read, calls change nothing (and return None).
#[cfg(feature = "cuda")]
pub fn configure() -> Option<PathBuf> {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

    // `from_current_dir` unwraps the working directory: with none, keep CubeCL's defaults.
    if std::env::current_dir().is_err() || CubeClRuntimeConfig::storage().lock().is_some() {
        return None;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    let mut chosen = None;
    if config.compilation.cache.is_none() {
        if let Some(dir) = kernel_cache_dir().filter(|d| writable(d)) {
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
pub fn configure() -> Option<PathBuf> {
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
        assert_eq!(configure().as_deref(), Some(cache.as_path()));
        match &CubeClRuntimeConfig::get().compilation.cache {
            Some(CacheConfig::File(p)) => assert_eq!(p, &cache),
            other => panic!("cache not set: {other:?}"),
        }
        assert_eq!(configure(), None, "CubeCL reads its config once: a second call changes nothing");
    }
}
