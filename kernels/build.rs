//! Fingerprints the kernels' source and the locked dependency versions (burn, CubeCL), as
//! `ICL_LAB_KERNELS_FINGERPRINT`. CubeCL keys its on-disk cache of compiled kernels by a
//! kernel's name and settings only, so a build whose kernel bodies differ would load another
//! build's PTX; icl-lab keeps one cache directory per fingerprint (src/runtime/kernel_cache.rs).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike std's hasher.
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// "name version" of each locked package of burn, CubeCL or cubek, sorted.
fn kernel_generators(lock: &str) -> Vec<String> {
    let mut found: Vec<String> = lock
        .split("[[package]]")
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim_start_matches([' ', '=']).trim().trim_matches('"').to_string()))
            };
            let (name, version) = (field("name ")?, field("version ")?);
            ["burn", "cubecl", "cubek"].iter().any(|p| name.starts_with(p)).then(|| format!("{name} {version}\n"))
        })
        .collect();
    found.sort();
    found
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for file in &files {
        let name = file.strip_prefix(&root).unwrap_or(file).to_string_lossy().replace('\\', "/");
        fnv1a(&mut hash, name.as_bytes());
        fnv1a(&mut hash, &std::fs::read(file).unwrap_or_default());
    }
    // The workspace's lock file pins burn, CubeCL and cubek, whose code generates the rest:
    // their versions count, not the rest of the lock file (a new dependency elsewhere leaves
    // every kernel as it was).
    let lock = root.join("../Cargo.lock");
    for package in kernel_generators(&std::fs::read_to_string(&lock).unwrap_or_default()) {
        fnv1a(&mut hash, package.as_bytes());
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!("cargo:rustc-env=ICL_LAB_KERNELS_FINGERPRINT={hash:016x}");
}
