//! Sums over a group of neighbouring lanes of a warp, by xor shuffles.

use cubecl::prelude::*;

/// Σ over this lane's aligned group of `n` lanes (`n` a power of two dividing 32); every lane
/// of the group gets the sum. `log2 n` shuffles. Every lane of the warp must call it.
#[cube]
pub fn sum_over_lanes<F: Float>(v: F, #[comptime] n: usize) -> F {
    let mut s = v;
    if comptime!(n >= 2) {
        s += plane_shuffle_xor(s, 1u32);
    }
    if comptime!(n >= 4) {
        s += plane_shuffle_xor(s, 2u32);
    }
    if comptime!(n >= 8) {
        s += plane_shuffle_xor(s, 4u32);
    }
    if comptime!(n >= 16) {
        s += plane_shuffle_xor(s, 8u32);
    }
    if comptime!(n >= 32) {
        s += plane_shuffle_xor(s, 16u32);
    }
    s
}
