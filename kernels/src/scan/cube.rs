//! Launching the kernels on burn's CubeCL backend.

use burn::tensor::ops::{ActivationOps, FloatTensorOps};
use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use super::kernel::{scan_backward_kernel, scan_forward_kernel, WARP};
use super::state_kernel::{scan_backward_state_kernel, scan_forward_state_kernel};
use super::source::{Pass, ScanSource};
use super::{channel_code_for, chosen_channel_code, chosen_entries, chosen_prefetch, chosen_time_split, chosen_tile, layout_of, ChannelCode, DeltaSoftplus, FusedScan, Layout, Saved, Scan, ScanKernels, StateTile, TimeSplit, CHUNK};
use crate::source_kernel::compiles_cuda;

/// Threads per cube (4 warps of channels of one batch row).
const BLOCK: usize = 128;

/// `[b, l, e, n]` of a scan, checked.
fn sizes<R: CubeRuntime>(inp: &Scan<CubeTensor<R>>) -> [usize; 4] {
    let [nb, l, e] = inp.x.shape().dims::<3>();
    let n = inp.a.shape().dims::<2>()[1];
    assert!(nb > 0 && l > 0 && e > 0 && n > 0, "selective scan: empty input [{nb}, {l}, {e}] with N = {n}");
    assert!(nb <= 65_535, "selective scan: batch {nb} exceeds the grid's y limit (65,535)");
    [nb, l, e, n]
}

/// Floats a vector load of B and C (and the backward's scratch rows) takes in the per-channel
/// kernels: 4 (16-byte loads) when a row of N floats is whole vectors and both tensors start
/// 16-byte aligned, else 1.
fn row_vector_size<R: CubeRuntime>(n: usize, rows: [&CubeTensor<R>; 2]) -> usize {
    let aligned = rows.iter().all(|t| t.handle.offset_start.unwrap_or(0).is_multiple_of(16));
    if n.is_multiple_of(4) && aligned {
        4
    } else {
        1
    }
}

/// Our own CUDA C++ of the per-channel kernels ([`ScanSource`]) for a scan of `[b, l, e, n]`
/// whose B and C rows load as `vector`-float vectors, if it runs this one: it indexes x, Δ, B,
/// C and the warps' sums of ∂B, ∂C with 32-bit offsets, so each must hold under 2³² floats.
fn channel_source<R: CubeRuntime>(pass: Pass, [nb, l, e, n]: [usize; 4], vector: usize) -> Option<ScanSource> {
    let fits = [nb * l * e, nb * l * e.div_ceil(WARP) * n].iter().all(|&floats| floats < 1 << 32);
    let runs = fits && vector == 4 && compiles_cuda::<R>() && channel_code_for(n, chosen_channel_code()) == ChannelCode::Source;
    let entries = chosen_entries().for_scan(pass == Pass::Backward, n);
    runs.then(|| ScanSource::split(pass, n as u32, CHUNK as u32, entries as u32, chosen_prefetch()))
}

/// A split's first pass of `kernel`'s scan: one thread a channel, all N entries.
fn first_pass(kernel: ScanSource, pass: Pass) -> ScanSource {
    ScanSource::split(pass, kernel.n, kernel.chunk, kernel.n, kernel.prefetch).with_softplus(kernel.softplus).with_gate(kernel.gate)
}

/// The grid of our CUDA C++'s `kernel`: its cubes' channels, by batch row, by segment.
fn source_grid(kernel: ScanSource, nb: usize, e: usize, segments: usize) -> CubeCount {
    CubeCount::Static(e.div_ceil(kernel.channels_per_cube() as usize) as u32, nb as u32, segments as u32)
}

/// The scalars of [`ScanSource`]'s kernels ([`super::source::SCALARS`]).
fn source_scalars(nb: usize, members: usize, l: usize, e: usize, seg: usize, zrow: usize) -> [u32; 6] {
    [nb, members, l, e, seg, zrow].map(|v| u32::try_from(v).expect("selective scan: a size past 32 bits"))
}

/// The gate z `[b, l, e]` as our CUDA C++ reads it, and the floats between its rows: a slice of
/// wider rows (Mamba's z, half of in_proj's output) in place, anything else as a dense copy.
fn gate_rows<R: CubeRuntime>(z: CubeTensor<R>) -> (CubeTensor<R>, usize) {
    let [nb, l, e] = z.shape().dims::<3>();
    let strides = z.meta.strides().to_vec();
    let row = strides[1];
    let in_place = strides[2] == 1 && row >= e && strides[0] == l * row && nb * l * row < 1 << 32;
    if in_place {
        (z, row)
    } else {
        (into_contiguous(z), e)
    }
}

/// The per-channel grid: cubes of [`BLOCK`] channels, by batch row, by segment of time.
fn launch_grid(nb: usize, e: usize, segments: usize) -> (CubeCount, CubeDim) {
    (CubeCount::Static(e.div_ceil(BLOCK) as u32, nb as u32, segments as u32), CubeDim::new_1d(BLOCK as u32))
}

/// Launches `kernel` with `tensors`' buffers in order.
fn launch_source<R: CubeRuntime>(kernel: ScanSource, count: CubeCount, tensors: &[&CubeTensor<R>], scalars: &[u32]) {
    assert_eq!(tensors.len(), kernel.buffers().len(), "selective scan: {:?} takes {} buffers", kernel.pass, kernel.buffers().len());
    let buffers = tensors.iter().map(|t| t.handle.clone().binding()).collect();
    crate::source_kernel::launch(&tensors[0].client, kernel, count, buffers, scalars);
}

/// Cubes along the channels and the grid of the per-state kernels (`block / n` channels a
/// cube).
fn state_grid(nb: usize, e: usize, n: usize, tile: StateTile) -> (usize, CubeCount, CubeDim) {
    let cubes = e.div_ceil(tile.block / n);
    (cubes, CubeCount::Static(cubes as u32, nb as u32, 1), CubeDim::new_1d(tile.block as u32))
}

/// The saved states' shape: rank 4 for the per-channel kernels (`[chunks, n, b, e]`), rank 5
/// for the per-state ones (`[chunks, b, e, n, 1]`), so the backward knows which ran.
pub(super) fn states_shape(layout: Layout, [nb, l, e, n]: [usize; 4], tile: StateTile) -> Shape {
    match layout {
        Layout::PerChannel => Shape::new([l.div_ceil(CHUNK), n, nb, e]),
        Layout::PerState => Shape::new([l.div_ceil(tile.chunk), nb, e, n, 1]),
    }
}

/// softplus(x) = max(x, 0) + log1p(exp(-|x|)) as tensor ops: the Δ the kernels without
/// softplus of their own take.
fn softplus_of<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(x: CubeTensor<R>) -> CubeTensor<R> {
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    let tail = B::<R, F, I, BT>::float_log1p(B::<R, F, I, BT>::float_exp(B::<R, F, I, BT>::float_neg(B::<R, F, I, BT>::float_abs(x.clone()))));
    // Dense, as the kernels index it (CubeCL may pitch a new tensor's rows).
    into_contiguous(B::<R, F, I, BT>::float_add(B::<R, F, I, BT>::float_clamp_min(x, 0.0f32.into()), tail))
}

/// The gate as tensor ops, for the kernels without it of their own: the forward's y·silu(z),
/// and what it saves (the ungated y with the states).
fn gated_after<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(y: CubeTensor<R>, gate: Option<CubeTensor<R>>, states: Option<CubeTensor<R>>) -> (CubeTensor<R>, Option<Saved<CubeTensor<R>>>) {
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    match gate {
        None => (y, states.map(|states| Saved { states, ungated: None })),
        Some(z) => {
            let silu = B::<R, F, I, BT>::float_mul(z.clone(), B::<R, F, I, BT>::sigmoid(z));
            let out = B::<R, F, I, BT>::float_mul(y.clone(), silu);
            (out, states.map(|states| Saved { states, ungated: Some(y) }))
        }
    }
}

/// The gate's backward as tensor ops, for the kernels without it of their own: from ∂ of the
/// gated output, ∂y = ∂out·silu(z) (dense, as the kernels index it) and
/// ∂z = ∂out·y·σ(z)(1 + z(1 - σ(z))).
fn gate_backward<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(dout: CubeTensor<R>, z: CubeTensor<R>, ungated: CubeTensor<R>) -> (CubeTensor<R>, CubeTensor<R>) {
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    let sig = B::<R, F, I, BT>::sigmoid(z.clone());
    let dy = into_contiguous(B::<R, F, I, BT>::float_mul(dout.clone(), B::<R, F, I, BT>::float_mul(z.clone(), sig.clone())));
    let one_minus = B::<R, F, I, BT>::float_add_scalar(B::<R, F, I, BT>::float_neg(sig.clone()), 1.0f32.into());
    let slope = B::<R, F, I, BT>::float_add_scalar(B::<R, F, I, BT>::float_mul(z, one_minus), 1.0f32.into());
    let dz = B::<R, F, I, BT>::float_mul(B::<R, F, I, BT>::float_mul(dout, ungated), B::<R, F, I, BT>::float_mul(sig, slope));
    (dy, dz)
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> ScanKernels for CubeBackend<R, F, I, BT> {
    fn scan_forward(
        inp: Scan<CubeTensor<R>>,
        gate: Option<CubeTensor<R>>,
        softplus: DeltaSoftplus,
        save: bool,
        layout: Layout,
        split: TimeSplit,
    ) -> (CubeTensor<R>, Option<Saved<CubeTensor<R>>>) {
        let mut inp = inp.map(into_contiguous);
        let [nb, l, e, n] = sizes(&inp);
        let members = super::members_of(&inp);
        assert_eq!(layout, layout.for_state_size(n), "selective scan: the per-state kernels need N to divide 32, got {n}");
        let (client, device, dtype) = (inp.x.client.clone(), inp.x.device.clone(), inp.x.dtype);
        // The kernels index every tensor as dense row-major: outputs must not be pitched
        // (CubeCL's default allocation pads rows, e.g. for e = 40 or 70).
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let y = empty(Shape::new([nb, l, e]));
        let tile = chosen_tile();
        let states = empty(if save { states_shape(layout, [nb, l, e, n], tile) } else { Shape::new([1]) });
        let vector = row_vector_size(n, [&inp.b, &inp.c]);
        let source = if layout == Layout::PerChannel { channel_source::<R>(Pass::Forward { save }, [nb, l, e, n], vector) } else { None };
        // Our CUDA C++ applies softplus as it reads Δ and the gate as it writes y; the other
        // kernels take Δ applied, and the gate after them.
        let source = source.map(|kernel| kernel.with_softplus(softplus).with_gate(gate.is_some()));
        if softplus && source.is_none() {
            inp.delta = softplus_of::<R, F, I, BT>(inp.delta);
        }
        if layout == Layout::PerState {
            let (_, count, dim) = state_grid(nb, e, n, tile);
            crate::launch!(scan_forward_state_kernel::<R>(
                &client,
                count,
                dim,
                inp.x.into_tensor_arg(),
                inp.delta.into_tensor_arg(),
                inp.a.into_tensor_arg(),
                inp.b.into_tensor_arg(),
                inp.c.into_tensor_arg(),
                inp.d.into_tensor_arg(),
                y.clone().into_tensor_arg(),
                states.clone().into_tensor_arg(),
                nb as u32,
                members as u32,
                l as u32,
                e as u32,
                n,
                tile.chunk,
                tile.block,
                save,
                dtype.into(),
            ));
            return gated_after::<R, F, I, BT>(y, gate, save.then_some(states));
        }
        if let Some(kernel) = source {
            let seg = split.segment_steps(nb * e, l, false);
            let gate = gate.map(gate_rows);
            let zrow = gate.as_ref().map_or(e, |(_, row)| *row);
            let (segments, scalars) = (split.segments(nb * e, l, false), source_scalars(nb, members, l, e, seg, zrow));
            // Each segment but the last's end state from a zero start, then every segment from
            // the state those give. One segment reads no ends (x stands in for them).
            let ends = if segments > 1 {
                let ends = empty(Shape::new([segments - 1, n + 1, nb, e]));
                let pass = first_pass(kernel, Pass::ForwardEnds);
                launch_source(pass, source_grid(pass, nb, e, segments - 1), &[&inp.x, &inp.delta, &inp.a, &inp.b, &ends], &scalars);
                ends
            } else {
                inp.x.clone()
            };
            let mut tensors = vec![&inp.x, &inp.delta, &inp.a, &inp.b, &inp.c, &inp.d, &y, &states, &ends];
            // Gated: z, and the ungated y kept for the backward (unsaved, states stand in).
            let ungated = (gate.is_some() && save).then(|| empty(Shape::new([nb, l, e])));
            if let Some((z, _)) = &gate {
                tensors.extend([z, ungated.as_ref().unwrap_or(&states)]);
            }
            launch_source(kernel, source_grid(kernel, nb, e, segments), &tensors, &scalars);
            return (y, save.then_some(Saved { states, ungated }));
        }
        let (count, dim) = launch_grid(nb, e, 1);
        crate::launch!(scan_forward_kernel::<R>(
            &client,
            count,
            dim,
            vector,
            inp.x.into_tensor_arg(),
            inp.delta.into_tensor_arg(),
            inp.a.into_tensor_arg(),
            inp.b.into_tensor_arg(),
            inp.c.into_tensor_arg(),
            inp.d.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            states.clone().into_tensor_arg(),
            nb as u32,
            members as u32,
            l as u32,
            e as u32,
            CHUNK as u32,
            n,
            save,
            dtype.into(),
        ));
        gated_after::<R, F, I, BT>(y, gate, save.then_some(states))
    }

    fn scan_backward(
        inp: Scan<CubeTensor<R>>,
        gate: Option<CubeTensor<R>>,
        softplus: DeltaSoftplus,
        saved: Saved<CubeTensor<R>>,
        dy: CubeTensor<R>,
        split: TimeSplit,
    ) -> (Scan<CubeTensor<R>>, Option<CubeTensor<R>>) {
        let mut inp = inp.map(into_contiguous);
        let dy = into_contiguous(dy);
        let Saved { states, ungated } = saved;
        let gate = gate.map(|z| (z, into_contiguous(ungated.expect("selective scan backward: a gated scan's forward saves its ungated y"))));
        let [nb, l, e, n] = sizes(&inp);
        let members = super::members_of(&inp);
        assert_eq!(dy.shape().dims::<3>(), [nb, l, e], "selective scan backward: dy must have y's shape");
        let (client, device, dtype) = (inp.x.client.clone(), inp.x.device.clone(), inp.x.dtype);
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let per_state = states.shape().num_dims() == 5;
        // ∂B and ∂C come back per group of channels: per cube (per state) or per warp (per
        // channel); ∂A and ∂D per batch row (and segment of time, for our code split over
        // time). One `sum_dim` each finishes them.
        let tile = chosen_tile();
        let groups = if per_state { state_grid(nb, e, n, tile).0 } else { e.div_ceil(WARP) };
        let vector = row_vector_size(n, [&inp.b, &inp.c]);
        let source = if per_state { None } else { channel_source::<R>(Pass::Backward, [nb, l, e, n], vector) };
        let source = source.map(|kernel| kernel.with_softplus(softplus).with_gate(gate.is_some()));
        // Where the kernels take the ungated y's gradient: the gate's backward first. Ours
        // write ∂z themselves.
        let (dy, dz) = match &gate {
            Some((z, ungated)) if source.is_none() => {
                let (dy, dz) = gate_backward::<R, F, I, BT>(dy, z.clone(), ungated.clone());
                (dy, Some(dz))
            }
            Some(_) => (dy, Some(empty(Shape::new([nb, l, e])))),
            None => (dy, None),
        };
        // Ours read z in place where they can.
        let (gate, zrow) = match gate {
            Some((z, ungated)) if source.is_some() => {
                let (z, row) = gate_rows(z);
                (Some((z, ungated)), row)
            }
            gate => (gate, e),
        };
        // Where the kernels take Δ after softplus: ∂ of the raw Δ is ∂Δ σ(raw), after them.
        let raw_delta = (softplus && source.is_none()).then(|| inp.delta.clone());
        if let Some(raw) = &raw_delta {
            inp.delta = softplus_of::<R, F, I, BT>(raw.clone());
        }
        let seg = if source.is_some() { split.segment_steps(nb * e, l, true) } else { l };
        let segments = if source.is_some() { split.segments(nb * e, l, true) } else { 1 };
        let dx = empty(Shape::new([nb, l, e]));
        let ddelta = empty(Shape::new([nb, l, e]));
        let da_part = empty(Shape::new([nb * segments, e, n]));
        let db_part = empty(Shape::new([nb, l, groups, n]));
        let dc_part = empty(Shape::new([nb, l, groups, n]));
        let dd_part = empty(Shape::new([nb * segments, e]));
        if per_state {
            assert_eq!(states.shape().dims::<5>()[0], l.div_ceil(tile.chunk), "selective scan backward: states saved with another chunk");
            let (_, count, dim) = state_grid(nb, e, n, tile);
            crate::launch!(scan_backward_state_kernel::<R>(
                &client,
                count,
                dim,
                inp.x.into_tensor_arg(),
                inp.delta.into_tensor_arg(),
                inp.a.into_tensor_arg(),
                inp.b.into_tensor_arg(),
                inp.c.into_tensor_arg(),
                inp.d.into_tensor_arg(),
                into_contiguous(states).into_tensor_arg(),
                dy.into_tensor_arg(),
                dx.clone().into_tensor_arg(),
                ddelta.clone().into_tensor_arg(),
                da_part.clone().into_tensor_arg(),
                db_part.clone().into_tensor_arg(),
                dc_part.clone().into_tensor_arg(),
                dd_part.clone().into_tensor_arg(),
                nb as u32,
                members as u32,
                l as u32,
                e as u32,
                n,
                tile.chunk,
                tile.block,
                dtype.into(),
            ));
        } else {
            let (count, dim) = launch_grid(nb, e, 1);
            if let Some(kernel) = source {
                let states = into_contiguous(states);
                let scalars = source_scalars(nb, members, l, e, seg, zrow);
                // Each segment but the first's adjoint carry at its start from a zero carry at
                // its end, then every segment from the carry those give.
                let starts = if segments > 1 {
                    let starts = empty(Shape::new([segments - 1, n + 1, nb, e]));
                    let pass = first_pass(kernel, Pass::BackwardStarts);
                    let mut tensors = vec![&inp.delta, &inp.a, &inp.c, &dy, &starts];
                    tensors.extend(gate.as_ref().map(|(z, _)| z));
                    launch_source(pass, source_grid(pass, nb, e, segments - 1), &tensors, &scalars);
                    starts
                } else {
                    inp.x.clone()
                };
                let mut tensors = vec![&inp.x, &inp.delta, &inp.a, &inp.b, &inp.c, &inp.d, &states, &dy, &starts, &dx, &ddelta, &da_part, &db_part, &dc_part, &dd_part];
                if let (Some((z, ungated)), Some(dz)) = (&gate, &dz) {
                    tensors.extend([z, ungated, dz]);
                }
                launch_source(kernel, source_grid(kernel, nb, e, segments), &tensors, &scalars);
            } else {
                crate::launch!(scan_backward_kernel::<R>(
                    &client,
                    count,
                    dim,
                    vector,
                    inp.x.into_tensor_arg(),
                    inp.delta.into_tensor_arg(),
                    inp.a.into_tensor_arg(),
                    inp.b.into_tensor_arg(),
                    inp.c.into_tensor_arg(),
                    inp.d.into_tensor_arg(),
                    into_contiguous(states).into_tensor_arg(),
                    dy.into_tensor_arg(),
                    dx.clone().into_tensor_arg(),
                    ddelta.clone().into_tensor_arg(),
                    da_part.clone().into_tensor_arg(),
                    db_part.clone().into_tensor_arg(),
                    dc_part.clone().into_tensor_arg(),
                    dd_part.clone().into_tensor_arg(),
                    nb as u32,
                    members as u32,
                    l as u32,
                    e as u32,
                    n,
                    CHUNK,
                    BLOCK,
                    dtype.into(),
                ));
            }
        }
        let sum = |t: CubeTensor<R>, dim: usize, shape: Shape| Self::float_reshape(Self::float_sum_dim(t, dim), shape);
        // ∂A and ∂D: over each member's batch rows (all rows for a plain scan).
        let (da, dd) = if members == 1 {
            (sum(da_part, 0, Shape::new([e, n])), sum(dd_part, 0, Shape::new([e])))
        } else {
            let by_member = |t: CubeTensor<R>, per_row: usize| Self::float_reshape(t, Shape::new([members, nb * segments / members, per_row]));
            (sum(by_member(da_part, e * n), 1, Shape::new([members * e, n])), sum(by_member(dd_part, e), 1, Shape::new([members * e])))
        };
        let ddelta = match raw_delta {
            Some(raw) => Self::float_mul(ddelta, Self::sigmoid(raw)),
            None => ddelta,
        };
        let grads = Scan {
            x: dx,
            delta: ddelta,
            a: da,
            b: sum(db_part, 2, Shape::new([nb, l, n])),
            c: sum(dc_part, 2, Shape::new([nb, l, n])),
            d: dd,
        };
        (grads, dz)
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedScan for CubeBackend<R, F, I, BT> {
    fn fused_scan(inp: Scan<CubeTensor<R>>, gate: Option<CubeTensor<R>>, softplus: DeltaSoftplus) -> CubeTensor<R> {
        let layout = layout_of(&inp);
        Self::scan_forward(inp, gate, softplus, false, layout, chosen_time_split()).0
    }
}
