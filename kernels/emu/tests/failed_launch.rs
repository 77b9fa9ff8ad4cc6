//! A launch that fails on the emulator (here: a cube count the emulator does not take) must
//! not leave later reads returning memory no kernel wrote: like a GPU's sticky error, every
//! read and sync after it fails, naming why. In a test binary of its own, since the emulator's
//! server (one per process) stays failed.

use cubecl::prelude::*;
use icl_lab_emu::{set_execute, EmuDevice, EmuRuntime};

#[cube(launch)]
fn fill_ones(out: &mut Array<f32>) {
    out[ABSOLUTE_POS] = f32::new(1.0);
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}

#[test]
fn reads_after_a_failed_launch_fail_too() {
    set_execute(true);
    let client = EmuRuntime::client(&EmuDevice);
    let zeros: Vec<u8> = [0.0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();

    // A launch that runs: its output is what it wrote.
    let good = client.create_from_slice(&zeros);
    // SAFETY: the handle holds 4 floats, one a unit of the one cube.
    unsafe { fill_ones::launch::<EmuRuntime>(&client, CubeCount::Static(1, 1, 1), CubeDim::new_1d(4), ArrayArg::from_raw_parts(good.clone(), 4)) };
    assert_eq!(floats(&client.read_one(good).expect("a read after a good launch")), [1.0; 4]);

    // A cube count read from a buffer, which the emulator refuses: the launch fails...
    let bad = client.create_from_slice(&zeros);
    let count = client.create_from_slice(&[1u32, 1, 1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    // SAFETY: as above.
    unsafe { fill_ones::launch::<EmuRuntime>(&client, CubeCount::Dynamic(count.binding()), CubeDim::new_1d(4), ArrayArg::from_raw_parts(bad.clone(), 4)) };
    // ... and its output is not read back as if it had run, nor is any other.
    let err = client.read_one(bad).expect_err("a read after a failed launch");
    assert!(format!("{err}").contains("static cube counts"), "{err}");
    let other = client.create_from_slice(&zeros);
    assert!(client.read_one(other).is_err(), "every later read fails");
    assert!(cubecl_common::future::block_on(client.sync()).is_err(), "and so does a sync");
}
