//! The fused selective scan.
//!
//! `h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t`,  `y_t = C_t · h_t + D ⊙ x_t`  (per batch b,
//! channel e, state entry n).
//!
//! Two layouts of the same computation ([`Layout`], picked by the scan's size and code:
//! [`Layout::by_size_with`]). Per state ([`state_kernel`], for scans of few channels): one GPU thread per (batch, channel, state entry), a channel's `N` threads
//! in one warp, sums over the state by xor shuffles, each step's inputs loaded one step
//! ahead, the chunk's states and decays in registers, and ∂B, ∂C summed over a cube's
//! channels in shared memory once per chunk. Per
//! channel ([`kernel`]): one GPU thread per (batch, channel) runs over time with its `N` state
//! entries in registers, B and C read as 16-byte vectors, and ∂B, ∂C summed over a warp's
//! channels by one reduce-scatter a step (several times fewer instructions a state-step than
//! per state, at 1/N of the threads). In both, the forward saves the state entering every chunk of steps
//! ([`CHUNK`] per channel, [`StateTile`]'s chunk per state); the backward walks the chunks
//! last to first, recomputes the chunk's states from its saved start
//! (per channel: into shared memory), and runs the adjoint recurrence
//! `g_t = C_t ∂y_t + exp(Δ_{t+1} A) g_{t+1}` back through the chunk. Sums over channels
//! (∂B, ∂C) are warp reductions; sums over batch (∂A, ∂D) are per-thread accumulators
//! reduced with one tensor op afterwards.
//!
//! Around the recurrence (paper-spec §6.2 steps 4 and 9), a scan may take Δ raw and apply
//! softplus to it, and may gate its output, `y·silu(z)`. Our CUDA C++ does both inside its
//! passes (softplus as it reads Δ, the gate as it writes y; the backward takes the gated
//! output's gradient and gives ∂z); the other kernels take them as tensor ops around them.
//!
//! Layering: [`ScanKernels`] is the pair of raw kernels (inputs in, outputs out), implemented
//! for `CubeBackend` ([`cube`]) and for `Fusion<CubeBackend>` ([`fusion`], a custom fusion
//! operation). [`FusedScan`] is the differentiable op a model calls, implemented for those two
//! (forward only) and for `Autodiff` over either (forward kernel + backward kernel).

mod cube;
mod fusion;
mod kernel;
mod source;
mod state_kernel;

use std::sync::OnceLock;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{TensorMetadata, TensorPrimitive};

/// Steps between the states the per-channel forward saves for the backward (the per-state
/// kernels take theirs from [`StateTile`]). The saved states are `b·E·N·⌈L/CHUNK⌉` floats; the
/// backward keeps a chunk's states in shared memory, `CHUNK·N` floats a thread (64 KB a cube
/// of 128 threads at N = 16: three cubes, 12 warps, an SM; its registers would allow four).
pub const CHUNK: usize = 8;

/// How the fused kernels spread a scan over GPU threads. Both compute the same thing; the
/// forward's saved states tell the backward which one ran (their rank: 4 per channel, 5 per
/// state), so a scan never mixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One thread per (batch, channel), its N state entries in registers ([`kernel`]).
    PerChannel,
    /// One thread per (batch, channel, state entry), N times the threads ([`state_kernel`]).
    /// The kernels need N to divide 32 (a channel's lanes in one warp); they are used for the
    /// N checked on a GPU (4, 8, 16), other N run per channel.
    PerState,
}

impl Layout {
    /// Per state below this many (batch, channel) pairs a scan, per channel from it: measured
    /// on an H100 (session 17, `tests/gpu/scan_layouts.sh`), per channel ran forward+backward
    /// in 0.86 ms against 1.24 at 256 x 256 channels and 1.75 against 4.12 at 1,024 x 256, and
    /// per state in 0.53 ms against 0.64 at 64 x 256 (a lone Mamba e128), where one thread a
    /// channel leaves most of the GPU idle.
    pub const PER_CHANNEL_FROM: usize = 32_768;

    /// The layout for a scan over `channels` (batch x channel) pairs of `n` state entries when
    /// the per-channel kernels are `code`: per channel at every size where our CUDA C++ runs
    /// them ([`channel_code_for`]; it beat per state at 64 x 256 channels too, 0.450 against
    /// 0.610 ms on an H100, docs/performance.md, sessions 22 and 23), else by
    /// [`Layout::PER_CHANNEL_FROM`].
    pub fn by_size_with(channels: usize, n: usize, code: ChannelCode) -> Layout {
        let layout = if channels >= Self::PER_CHANNEL_FROM || channel_code_for(n, code) == ChannelCode::Source { Layout::PerChannel } else { Layout::PerState };
        layout.for_state_size(n)
    }

    /// `channel` or `state` (the names of `ICL_LAB_SCAN_KERNEL`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "channel" => Some(Layout::PerChannel),
            "state" => Some(Layout::PerState),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::PerChannel => "channel",
            Layout::PerState => "state",
        }
    }

    /// The layout that runs a scan with `n` state entries when `self` is asked for.
    pub fn for_state_size(self, n: usize) -> Layout {
        match self {
            Layout::PerState if CHECKED_STATE_SIZES.contains(&n) => Layout::PerState,
            _ => Layout::PerChannel,
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The state sizes the per-state kernels were checked with on the H200 (`icl-lab bench scan
/// --check --kernel state`, session 6). Any N dividing 32 fits their thread layout.
const CHECKED_STATE_SIZES: [usize; 3] = [4, 8, 16];

/// Which layout scans take: by size ([`Layout::by_size_with`], the default), or one forced (by
/// `ICL_LAB_SCAN_KERNEL=channel|state`, or [`choose_layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutChoice {
    BySize,
    Forced(Layout),
}

impl LayoutChoice {
    /// The layout of a scan over `channels` (batch x channel) pairs of `n` state entries.
    pub fn layout_for(self, channels: usize, n: usize) -> Layout {
        match self {
            LayoutChoice::BySize => Layout::by_size_with(channels, n, chosen_channel_code()),
            LayoutChoice::Forced(layout) => layout.for_state_size(n),
        }
    }
}

impl std::fmt::Display for LayoutChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutChoice::BySize => write!(f, "by size (per channel where our CUDA C++ runs it, else per state below {} channels)", Layout::PER_CHANNEL_FROM),
            LayoutChoice::Forced(layout) => layout.fmt(f),
        }
    }
}

static CHOSEN: OnceLock<LayoutChoice> = OnceLock::new();

/// Forces the process's layout before its first scan; returns the choice already in force if
/// a scan (or an earlier call) fixed it first.
pub fn choose_layout(layout: Layout) -> Result<(), LayoutChoice> {
    CHOSEN.set(LayoutChoice::Forced(layout)).map_err(|_| chosen_layout())
}

/// The process's choice: [`choose_layout`]'s, else `ICL_LAB_SCAN_KERNEL` (`channel` or
/// `state`; another value is reported once on stderr and ignored), else by size.
pub fn chosen_layout() -> LayoutChoice {
    *CHOSEN.get_or_init(|| {
        crate::env_choice("ICL_LAB_SCAN_KERNEL", LayoutChoice::BySize, |v| Layout::parse(v).map(LayoutChoice::Forced).ok_or_else(|| "expected channel or state".to_string()))
    })
}

/// Which code runs the per-channel kernels on CUDA: our own CUDA C++ ([`source`], the
/// default) or CubeCL's ([`kernel`]; `ICL_LAB_SCAN_CODE=cubecl`, to compare them). Other
/// runtimes, and N or B, C rows the source does not take (N not a multiple of 4, or above 32;
/// rows not 16-byte aligned), run CubeCL's. The two keep their saved states alike, so a
/// forward of one and a backward of the other agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelCode {
    Source,
    Cubecl,
}

impl ChannelCode {
    /// `source` or `cubecl`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "source" => Ok(ChannelCode::Source),
            "cubecl" => Ok(ChannelCode::Cubecl),
            _ => Err("expected source or cubecl".to_string()),
        }
    }
}

impl std::fmt::Display for ChannelCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelCode::Source => "source",
            ChannelCode::Cubecl => "cubecl",
        })
    }
}

static CHANNEL_CODE: OnceLock<ChannelCode> = OnceLock::new();

/// The process's per-channel code: `ICL_LAB_SCAN_CODE` (a bad value is reported once on
/// stderr and ignored), else [`ChannelCode::Source`].
pub fn chosen_channel_code() -> ChannelCode {
    *CHANNEL_CODE.get_or_init(|| crate::env_choice("ICL_LAB_SCAN_CODE", ChannelCode::Source, ChannelCode::parse))
}

/// The code that runs a per-channel scan of `n` state entries when `code` is chosen: ours
/// only for the N it takes ([`source::ScanSource::takes`]; on CUDA, with 16-byte aligned B
/// and C rows, as the models' are).
pub fn channel_code_for(n: usize, code: ChannelCode) -> ChannelCode {
    if code == ChannelCode::Source && source::ScanSource::takes(n) {
        ChannelCode::Source
    } else {
        ChannelCode::Cubecl
    }
}

/// How far ahead of the step it runs our per-channel CUDA C++ asks a cache for a step's
/// inputs (x, Δ, ∂y and the B, C rows), in the passes that walk the steps one by one with
/// nothing else to load (the forward, and the first passes of a split). Its registers hold
/// only the next step's inputs, so without a prefetch each step waits out a DRAM round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefetch {
    /// 1 or 2: L1 (the SM's own) or L2.
    pub level: u8,
    /// Steps ahead; 0: no prefetch.
    pub ahead: u32,
}

impl Prefetch {
    pub const NONE: Prefetch = Prefetch { level: 2, ahead: 0 };
    /// The prefetch scans take unless told otherwise: L1, 16 steps ahead (a DRAM round trip
    /// under load is several steps of a warp's work).
    pub const DEFAULT: Prefetch = Prefetch { level: 1, ahead: 16 };

    /// `none`, or `l1:K` / `l2:K` (K steps ahead, 1 to 256).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || "expected none, l1:K or l2:K (K steps ahead, 1 to 256)".to_string();
        let text = text.trim().to_ascii_lowercase();
        if text == "none" {
            return Ok(Prefetch::NONE);
        }
        let (level, ahead) = text.split_once(':').ok_or_else(bad)?;
        let level = match level {
            "l1" => 1,
            "l2" => 2,
            _ => return Err(bad()),
        };
        match ahead.parse::<u32>() {
            Ok(ahead) if (1..=256).contains(&ahead) => Ok(Prefetch { level, ahead }),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ahead {
            0 => f.write_str("none"),
            k => write!(f, "l{}:{k}", self.level),
        }
    }
}

static PREFETCH: OnceLock<Prefetch> = OnceLock::new();

/// The process's prefetch: `ICL_LAB_SCAN_PREFETCH` (a bad value is reported once on stderr
/// and ignored), else [`Prefetch::DEFAULT`].
pub fn chosen_prefetch() -> Prefetch {
    *PREFETCH.get_or_init(|| crate::env_choice("ICL_LAB_SCAN_PREFETCH", Prefetch::DEFAULT, Prefetch::parse))
}

/// State entries each thread of our per-channel CUDA C++ holds, in the forward and in the
/// backward (`ICL_LAB_SCAN_ENTRIES=F` for both or `F,B`: multiples of 4 from 4 to 32; a scan
/// takes the most up to each that divide its N). Fewer entries are more threads a channel
/// (N / entries, in as many warps), which sum y, or ∂x and ∂Δ, over shared memory once a
/// chunk. The forward and the backward may differ: they save and read the same states.
///
/// Default: the forward split in 8 entries, the backward not split. On an H100
/// (docs/performance.md, session 25) the forward in 8 took a 64 x 280 x 512 scan from 0.43 to
/// 0.25 ms (at 64 x 1,024 x 512 and with 16 members it was as fast as unsplit), while the
/// backward split in 8 or 4 was slower or no faster everywhere: it issues on most of its
/// cycles already, and the split adds instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entries {
    pub forward: usize,
    pub backward: usize,
}

impl Entries {
    pub const DEFAULT: Entries = Entries { forward: 8, backward: 32 };

    /// `F` (both passes) or `F,B`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let one = |t: &str| match t.trim().parse::<usize>() {
            Ok(s) if s.is_multiple_of(4) && (4..=32).contains(&s) => Ok(s),
            _ => Err(format!("{:?}: expected F or F,B, state entries a thread in the forward and the backward (multiples of 4 from 4 to 32)", t.trim())),
        };
        match text.split_once(',') {
            Some((f, b)) => Ok(Entries { forward: one(f)?, backward: one(b)? }),
            None => one(text).map(|s| Entries { forward: s, backward: s }),
        }
    }

    /// The entries a thread of `pass`'s kernel holds in a scan of N = `n` (4 ≤ n ≤ 32, a
    /// multiple of 4).
    pub fn for_scan(self, backward: bool, n: usize) -> usize {
        let wanted = if backward { self.backward } else { self.forward };
        let pass = if backward { source::Pass::Backward } else { source::Pass::Forward { save: true } };
        source::ScanSource::split(pass, n as u32, CHUNK as u32, wanted as u32, Prefetch::NONE).entries as usize
    }
}

impl std::fmt::Display for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.forward, self.backward)
    }
}

static ENTRIES: OnceLock<Entries> = OnceLock::new();

/// The process's entries a thread: `ICL_LAB_SCAN_ENTRIES` (a bad value is reported once on
/// stderr and ignored), else [`Entries::DEFAULT`].
pub fn chosen_entries() -> Entries {
    *ENTRIES.get_or_init(|| crate::env_choice("ICL_LAB_SCAN_ENTRIES", Entries::DEFAULT, Entries::parse))
}

/// How our per-channel CUDA C++ splits a scan's steps into segments of time, a thread per
/// (batch, channel, segment). With few channels (a lone run, a long sequence) one thread a
/// channel leaves most of the GPU idle; split, a first pass gives each segment its boundary
/// state from a zero start (and its Σ Δ, whose exponential carries a state across it), and
/// the second runs every segment at once from the state the earlier ones give. The forward
/// and the backward split each on their own: the saved states are per chunk either way.
/// CubeCL's per-channel kernel and the per-state kernels do not split.
///
/// Not split by default ([`TimeSplit::DEFAULT`]): on an H100 (docs/performance.md, session
/// 23) twice the warps did not make the forward faster at issue 7's shape (1.11 ms whole,
/// 1.18 in two segments), and `Auto` lost at a lone Mamba e128's scan (0.540 against 0.450
/// ms forward+backward); it won only at 64 x 280 x 512 (0.784 against 0.867).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSplit {
    /// Segments enough for [`TimeSplit::FORWARD_THREADS`] (forward) or
    /// [`TimeSplit::BACKWARD_THREADS`] (backward) threads.
    Auto,
    /// At most this many segments (1: none).
    Segments(usize),
}

impl TimeSplit {
    /// Threads the forward fills the GPU with: its 126 registers a thread hold 4 cubes of 128
    /// an SM, about 68,000 threads on an H100's or H200's 132 SMs.
    pub const FORWARD_THREADS: usize = 65_536;
    /// The backward's: its chunk of states in shared memory holds 3 cubes an SM (about 50,000
    /// threads).
    pub const BACKWARD_THREADS: usize = 49_152;
    /// The split scans take unless told otherwise: none (above).
    pub const DEFAULT: TimeSplit = TimeSplit::Segments(1);

    /// `auto`, or a number of segments (≥ 1).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(TimeSplit::Auto),
            t => match t.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(TimeSplit::Segments(k)),
                _ => Err("expected auto or a number of segments (1 or more)".to_string()),
            },
        }
    }

    /// Steps a segment (a multiple of [`CHUNK`], so chunks never straddle two) for a scan of
    /// `channels` (batch x channel) pairs over `len` steps, by the forward's threads or the
    /// backward's.
    pub fn segment_steps(self, channels: usize, len: usize, backward: bool) -> usize {
        let chunks = len.div_ceil(CHUNK).max(1);
        let threads = if backward { Self::BACKWARD_THREADS } else { Self::FORWARD_THREADS };
        let wanted = match self {
            TimeSplit::Auto => threads.div_ceil(channels.max(1)),
            TimeSplit::Segments(k) => k,
        };
        chunks.div_ceil(wanted.clamp(1, chunks)) * CHUNK
    }

    /// Segments of [`TimeSplit::segment_steps`] steps that cover `len` steps.
    pub fn segments(self, channels: usize, len: usize, backward: bool) -> usize {
        len.div_ceil(self.segment_steps(channels, len, backward))
    }
}

impl std::fmt::Display for TimeSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeSplit::Auto => f.write_str("auto"),
            TimeSplit::Segments(k) => write!(f, "{k}"),
        }
    }
}

static TIME_SPLIT: OnceLock<TimeSplit> = OnceLock::new();

/// The process's split: `ICL_LAB_SCAN_SEGMENTS` (`auto` or a count; a bad value is reported
/// once on stderr and ignored), else [`TimeSplit::DEFAULT`].
pub fn chosen_time_split() -> TimeSplit {
    *TIME_SPLIT.get_or_init(|| crate::env_choice("ICL_LAB_SCAN_SEGMENTS", TimeSplit::DEFAULT, TimeSplit::parse))
}

/// The per-state kernels' tiling: threads per cube and the steps between the states the
/// forward saves (the backward's chunk, held in registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTile {
    pub block: usize,
    pub chunk: usize,
}

/// `ICL_LAB_SCAN_TILE`: `block,chunk` for the per-state kernels (default `1024,8`).
pub const TILE_ENV: &str = "ICL_LAB_SCAN_TILE";

impl StateTile {
    /// Cubes of 1,024 threads cap the backward at 64 registers a thread (CubeCL declares the
    /// cube size as the kernel's launch bound), which doubles its occupancy against cubes of
    /// 512 (128 registers, 25 %); chunks of 8 keep its per-thread chunk within those 64.
    /// Fastest of five tilings on the H200 (docs/performance.md, session 10).
    pub const DEFAULT: StateTile = StateTile { block: 1024, chunk: 8 };

    /// `block,chunk`, checked to fit every state size the kernels take (up to 16): a chunk's
    /// `chunk·n` (step, entry) pairs need one thread each at the chunk's end, and the backward's
    /// per-warp sums `(block/32)·chunk·n` floats of ∂B and of ∂C must fit 48 KB of shared memory.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [block, chunk] = parts[..] else {
            return Err("expected block,chunk (e.g. 512,16)".to_string());
        };
        let num = |what: &str, v: &str, allowed: &[usize]| match v.parse::<usize>() {
            Ok(x) if allowed.contains(&x) => Ok(x),
            _ => Err(format!("{what} {v:?} is not one of {allowed:?}")),
        };
        let tile = StateTile { block: num("block", block, &[128, 256, 512, 1024])?, chunk: num("chunk", chunk, &[4, 8, 16, 32])? };
        let n = *CHECKED_STATE_SIZES.iter().max().expect("state sizes");
        if tile.chunk * n > tile.block {
            return Err(format!("chunk·16 = {} exceeds the block of {}", tile.chunk * n, tile.block));
        }
        let shared = 2 * (tile.block / 32) * tile.chunk * n * 4;
        if shared > 48 * 1024 {
            return Err(format!("the backward's sums would take {} KB of shared memory (at most 48)", shared / 1024));
        }
        Ok(tile)
    }
}

/// `block,chunk`, as [`StateTile::parse`] reads it.
impl std::fmt::Display for StateTile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.block, self.chunk)
    }
}

static TILE: OnceLock<StateTile> = OnceLock::new();

/// The process's per-state tiling: `ICL_LAB_SCAN_TILE` (a bad value is reported once on
/// stderr and ignored), else [`StateTile::DEFAULT`]. Fixed at the first scan, so a forward's
/// saved states always match the backward that reads them.
pub fn chosen_tile() -> StateTile {
    *TILE.get_or_init(|| crate::env_choice(TILE_ENV, StateTile::DEFAULT, StateTile::parse))
}

/// The six operands of a scan (or their six gradients), in this order everywhere.
///
/// # Shapes
/// - x, delta: `[b, l, e]` (delta after softplus, or before it where the scan is told to apply it: [`DeltaSoftplus`])
/// - a: `[e, n]`
/// - b, c: `[b, l, n]`
/// - d: `[e]`
#[derive(Debug, Clone)]
pub struct Scan<T> {
    pub x: T,
    pub delta: T,
    pub a: T,
    pub b: T,
    pub c: T,
    pub d: T,
}

impl<T> Scan<T> {
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Scan<U> {
        Scan { x: f(self.x), delta: f(self.delta), a: f(self.a), b: f(self.b), c: f(self.c), d: f(self.d) }
    }

    pub fn into_array(self) -> [T; 6] {
        [self.x, self.delta, self.a, self.b, self.c, self.d]
    }

    pub fn from_array([x, delta, a, b, c, d]: [T; 6]) -> Self {
        Scan { x, delta, a, b, c, d }
    }
}

/// What the scan does with the Δ it is given: take it as it is, or (`softplus`) apply
/// softplus to it first (paper-spec §6.2 step 4; the gradient is then the raw Δ's).
pub type DeltaSoftplus = bool;

/// What a forward keeps for its backward: the states entering each chunk (an opaque tensor)
/// and, for a gated scan, the y before the gate.
#[derive(Debug, Clone)]
pub struct Saved<T> {
    pub states: T,
    pub ungated: Option<T>,
}

/// The raw kernels on a backend's primitives.
pub trait ScanKernels: Backend {
    /// Returns y `[b, l, e]` (with a gate z `[b, l, e]`, `y·silu(z)`) and, when `save`, what
    /// [`ScanKernels::scan_backward`] needs. `layout` must suit the state size
    /// ([`Layout::for_state_size`]); `split` is how our per-channel code splits time.
    fn scan_forward(
        inp: Scan<FloatTensor<Self>>,
        gate: Option<FloatTensor<Self>>,
        softplus: DeltaSoftplus,
        save: bool,
        layout: Layout,
        split: TimeSplit,
    ) -> (FloatTensor<Self>, Option<Saved<FloatTensor<Self>>>);

    /// Gradients of the six operands (and of the gate, for a gated scan) given ∂L/∂y `dy`
    /// and what the forward saved (a forward of any split, with the same gate and
    /// `softplus`).
    fn scan_backward(
        inp: Scan<FloatTensor<Self>>,
        gate: Option<FloatTensor<Self>>,
        softplus: DeltaSoftplus,
        saved: Saved<FloatTensor<Self>>,
        dy: FloatTensor<Self>,
        split: TimeSplit,
    ) -> (Scan<FloatTensor<Self>>, Option<FloatTensor<Self>>);
}

/// Backends with a fused, differentiable selective scan.
pub trait FusedScan: Backend {
    fn fused_scan(inp: Scan<FloatTensor<Self>>, gate: Option<FloatTensor<Self>>, softplus: DeltaSoftplus) -> FloatTensor<Self>;
}

/// The fused selective scan; y `[b, l, e]`. Shapes as in [`Scan`]. A stacked scan of K
/// members (the models' `members`) has A `[K·e, n]` and D `[K·e]`, and x, Δ, B and C hold
/// the members' batch rows in order; one launch of each kernel serves every member. With
/// `softplus`, Δ is given raw and the scan takes softplus(Δ) (our CUDA C++ applies it as it
/// reads Δ; the other kernels after a pass of tensor ops). With a gate z `[b, l, e]`, the
/// scan returns `y·silu(z)` (paper-spec §6.2 step 9), likewise inside our CUDA C++.
#[allow(clippy::too_many_arguments)]
pub fn selective_scan<B: FusedScan>(
    x: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    a: Tensor<B, 2>,
    b: Tensor<B, 3>,
    c: Tensor<B, 3>,
    d: Tensor<B, 1>,
    gate: Option<Tensor<B, 3>>,
    softplus: DeltaSoftplus,
) -> Tensor<B, 3> {
    let [nb, l, e] = x.dims();
    let n = a.dims()[1];
    assert_eq!(delta.dims(), [nb, l, e], "selective scan: delta must have x's shape");
    let k = members_in(a.dims()[0], e, nb);
    assert_eq!(b.dims(), [nb, l, n], "selective scan: B must be [b, l, n] = [{nb}, {l}, {n}]");
    assert_eq!(c.dims(), [nb, l, n], "selective scan: C must be [b, l, n] = [{nb}, {l}, {n}]");
    assert_eq!(d.dims(), [k * e], "selective scan: D must be [K·e] = [{k}·{e}]");
    if let Some(z) = &gate {
        assert_eq!(z.dims(), [nb, l, e], "selective scan: the gate z must have x's shape");
    }
    let prim = |t: TensorPrimitive<B>| t.tensor();
    let inp = Scan {
        x: prim(x.into_primitive()),
        delta: prim(delta.into_primitive()),
        a: prim(a.into_primitive()),
        b: prim(b.into_primitive()),
        c: prim(c.into_primitive()),
        d: prim(d.into_primitive()),
    };
    let gate = gate.map(|z| prim(z.into_primitive()));
    Tensor::from_primitive(TensorPrimitive::Float(B::fused_scan(inp, gate, softplus)))
}

impl<B: ScanKernels, C: CheckpointStrategy> FusedScan for Autodiff<B, C> {
    fn fused_scan(inp: Scan<FloatTensor<Self>>, gate: Option<FloatTensor<Self>>, softplus: DeltaSoftplus) -> FloatTensor<Self> {
        // The graph's node has a parent an operand: six, or seven with the gate.
        match gate {
            None => tracked_scan::<B, C, 6>(inp, None, softplus),
            Some(z) => tracked_scan::<B, C, 7>(inp, Some(z), softplus),
        }
    }
}

/// The scan as a node of `N` parents of burn's autodiff graph (the operands, then the gate).
fn tracked_scan<B: ScanKernels, C: CheckpointStrategy, const N: usize>(
    inp: Scan<FloatTensor<Autodiff<B, C>>>,
    gate: Option<FloatTensor<Autodiff<B, C>>>,
    softplus: DeltaSoftplus,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes: Vec<_> = [&inp.x, &inp.delta, &inp.a, &inp.b, &inp.c, &inp.d].into_iter().chain(&gate).map(|t| t.node.clone()).collect();
    let nodes: [_; N] = nodes.try_into().unwrap_or_else(|_| unreachable!("N is the operands and the gate"));
    let prims = inp.map(|t| t.primitive);
    let gate = gate.map(|z| z.primitive);
    let layout = layout_of(&prims);
    match (ScanBackward { softplus }).prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, saved) = B::scan_forward(prims.clone(), gate.clone(), softplus, true, layout, chosen_time_split());
            let saved = saved.expect("scan_forward(save = true) returns what it saved");
            prep.finish((prims, gate, saved), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::scan_forward(prims, gate, softplus, false, layout, chosen_time_split()).0),
    }
}

/// How many members a stacked scan holds (`A` `[K·e, n]` for x `[K·b, l, e]`; 1 for a plain
/// scan). The kernels read member m's rows of A and D for batch rows m·b .. (m+1)·b, and sum
/// ∂A and ∂D over each member's rows.
pub(crate) fn members_of<T: TensorMetadata>(inp: &Scan<T>) -> usize {
    members_in(inp.a.shape().dims::<2>()[0], inp.x.shape().dims::<3>()[2], inp.x.shape().dims::<3>()[0])
}

/// The members of A's `rows` rows of width `e` over x's `nb` batch rows; panics unless A holds
/// whole members that split the batch rows evenly.
fn members_in(rows: usize, e: usize, nb: usize) -> usize {
    let k = rows / e.max(1);
    assert!(k >= 1 && k * e == rows && nb.is_multiple_of(k), "selective scan: A's {rows} rows are not whole members of width {e} over {nb} batch rows");
    k
}

/// The layout that runs this scan (x is `[b, l, e]`, A `[e, n]`).
pub(crate) fn layout_of<T: burn::tensor::TensorMetadata>(inp: &Scan<T>) -> Layout {
    let [b, _, e] = inp.x.shape().dims::<3>();
    chosen_layout().layout_for(b * e, inp.a.shape().dims::<2>()[1])
}

/// The backward step of the fused scan in burn's autodiff graph.
#[derive(Debug)]
struct ScanBackward {
    softplus: DeltaSoftplus,
}

impl<B: ScanKernels, const N: usize> Backward<B, N> for ScanBackward {
    /// The operands, the gate, and what the forward saved.
    type State = (Scan<FloatTensor<B>>, Option<FloatTensor<B>>, Saved<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (inp, gate, saved) = ops.state;
        let (g, dz) = B::scan_backward(inp, gate, self.softplus, saved, dy, chosen_time_split());
        for (parent, grad) in ops.parents.into_iter().zip(g.into_array().into_iter().chain(dz)) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_state_kernels_take_only_checked_state_sizes() {
        for n in CHECKED_STATE_SIZES {
            assert_eq!(32 % n, 0, "a channel's {n} lanes must sit in one warp");
            assert_eq!(Layout::PerState.for_state_size(n), Layout::PerState, "n = {n}");
        }
        for n in [0, 1, 2, 3, 5, 12, 24, 32, 64] {
            assert_eq!(Layout::PerState.for_state_size(n), Layout::PerChannel, "n = {n}");
        }
        assert!([1, 16, 64].iter().all(|&n| Layout::PerChannel.for_state_size(n) == Layout::PerChannel));
    }

    #[test]
    fn scans_of_many_channels_run_per_channel_and_few_per_state() {
        let from = Layout::PER_CHANNEL_FROM;
        let by_size = |channels, n| Layout::by_size_with(channels, n, ChannelCode::Cubecl);
        assert_eq!(by_size(64 * 256, 16), Layout::PerState, "a lone Mamba e128");
        assert_eq!(by_size(from - 1, 16), Layout::PerState);
        assert_eq!(by_size(from, 16), Layout::PerChannel);
        assert_eq!(by_size(1024 * 256, 16), Layout::PerChannel, "16 Mamba e128 members");
        // A state size the per-state kernels were not checked with runs per channel at any size.
        assert_eq!(by_size(64, 12), Layout::PerChannel);
        // Where our CUDA C++ runs the per-channel kernels, they run at every size; where it
        // does not take N (N = 2), the size decides as with CubeCL's.
        let ours = |channels, n| Layout::by_size_with(channels, n, ChannelCode::Source);
        assert_eq!(ours(64 * 256, 16), Layout::PerChannel, "a lone Mamba e128, split over time");
        assert_eq!(ours(64, 8), Layout::PerChannel);
        assert_eq!(ours(64, 2), Layout::PerState.for_state_size(2));
        assert_eq!(ours(64, 4), Layout::PerChannel);
        // A forced layout holds at every size, within what the state size allows.
        assert_eq!(LayoutChoice::Forced(Layout::PerState).layout_for(1 << 20, 16), Layout::PerState);
        assert_eq!(LayoutChoice::Forced(Layout::PerChannel).layout_for(64, 16), Layout::PerChannel);
        assert_eq!(LayoutChoice::BySize.layout_for(64, 16), Layout::by_size_with(64, 16, chosen_channel_code()));
    }

    #[test]
    fn our_code_runs_the_state_sizes_it_takes() {
        for n in [4, 8, 12, 16, 32] {
            assert_eq!(channel_code_for(n, ChannelCode::Source), ChannelCode::Source, "n = {n}");
            assert_eq!(channel_code_for(n, ChannelCode::Cubecl), ChannelCode::Cubecl, "n = {n}");
        }
        for n in [1, 2, 3, 6, 36, 64] {
            assert_eq!(channel_code_for(n, ChannelCode::Source), ChannelCode::Cubecl, "n = {n}");
        }
    }

    #[test]
    fn time_splits_give_whole_chunks_and_fill_the_gpu() {
        assert_eq!(TimeSplit::parse(" auto "), Ok(TimeSplit::Auto));
        assert_eq!(TimeSplit::parse("3"), Ok(TimeSplit::Segments(3)));
        assert_eq!(TimeSplit::parse(&TimeSplit::Segments(5).to_string()), Ok(TimeSplit::Segments(5)));
        for bad in ["0", "-1", "two", ""] {
            assert!(TimeSplit::parse(bad).unwrap_err().contains("expected auto"), "{bad:?}");
        }
        let steps = |split: TimeSplit, channels, len, backward| split.segment_steps(channels, len, backward);
        // One segment: the whole scan, rounded up to whole chunks.
        assert_eq!(steps(TimeSplit::Segments(1), 64, 1000, false), 1000usize.div_ceil(CHUNK) * CHUNK);
        // Never shorter than a chunk, however many segments are asked for.
        assert_eq!(steps(TimeSplit::Segments(1000), 64, 37, true), CHUNK);
        // Two segments of 1,024 steps: 512 each.
        assert_eq!(steps(TimeSplit::Segments(2), 64, 1024, false), 512);
        // Auto: enough (batch, channel, segment) threads, and none when the channels alone are.
        let issue = 64 * 512;
        assert!(issue * TimeSplit::Auto.segments(issue, 1024, false) >= TimeSplit::FORWARD_THREADS);
        assert!(issue * TimeSplit::Auto.segments(issue, 1024, true) >= TimeSplit::BACKWARD_THREADS);
        assert_eq!(TimeSplit::Segments(3).segments(64, 1024, false), 3, "3 segments of 344 steps");
        for backward in [false, true] {
            assert_eq!(steps(TimeSplit::Auto, 1024 * 256, 82, backward), 88, "16 Mamba e128 members: one segment");
        }
        for (channels, len) in [(1, 1), (7, 9), (64 * 256, 82), (3 * 70, 100)] {
            for split in [TimeSplit::Auto, TimeSplit::Segments(3)] {
                let s = steps(split, channels, len, false);
                assert!(s % CHUNK == 0 && s >= CHUNK && s < len + CHUNK, "{split} {channels} x {len}: {s}");
                assert_eq!(split.segments(channels, len, false), len.div_ceil(s));
            }
        }
    }

    #[test]
    fn entries_parse_for_both_passes_or_each() {
        assert_eq!(Entries::parse(" 8 "), Ok(Entries { forward: 8, backward: 8 }));
        assert_eq!(Entries::parse("8, 16"), Ok(Entries { forward: 8, backward: 16 }));
        assert_eq!(Entries::parse(&Entries::DEFAULT.to_string()), Ok(Entries::DEFAULT));
        for bad in ["0", "2", "6", "36", "x", "", "8,", "8,6", "4,8,16"] {
            assert!(Entries::parse(bad).unwrap_err().contains("expected F or F,B"), "{bad:?}");
        }
        // The default: the forward split in 8, the backward whole, for Mamba's N = 16.
        assert_eq!((Entries::DEFAULT.for_scan(false, 16), Entries::DEFAULT.for_scan(true, 16)), (8, 16));
        assert_eq!(Entries::DEFAULT.for_scan(false, 12), 4, "8 does not divide 12");
    }

    #[test]
    fn prefetches_parse_and_print_back() {
        assert_eq!(Prefetch::parse(" L1:16 "), Ok(Prefetch { level: 1, ahead: 16 }));
        assert_eq!(Prefetch::parse("none"), Ok(Prefetch::NONE));
        for p in [Prefetch::NONE, Prefetch { level: 2, ahead: 8 }, Prefetch { level: 1, ahead: 256 }] {
            assert_eq!(Prefetch::parse(&p.to_string()), Ok(p));
        }
        for bad in ["l3:4", "l1:0", "l2:257", "l1", "16", "", "l1:x"] {
            assert!(Prefetch::parse(bad).unwrap_err().contains("expected none"), "{bad:?}");
        }
    }

    #[test]
    fn layouts_parse_by_name_and_mark_their_saved_states_by_rank() {
        for layout in [Layout::PerChannel, Layout::PerState] {
            assert_eq!(Layout::parse(layout.name()), Some(layout));
        }
        assert_eq!(Layout::parse(" state "), Some(Layout::PerState));
        assert_eq!(Layout::parse("warp"), None);
        // The backward tells the layouts apart by rank; both hold one float per state entry
        // entering each chunk.
        let dims = [3, 100, 70, 16];
        // (The per-channel kernels save every CHUNK steps whatever the tile; the per-state ones
        // every tile.chunk steps.)
        let tile = StateTile { block: 512, chunk: CHUNK };
        let (per_channel, per_state) = (cube::states_shape(Layout::PerChannel, dims, tile), cube::states_shape(Layout::PerState, dims, tile));
        assert_eq!((per_channel.num_dims(), per_state.num_dims()), (4, 5));
        assert_eq!(per_channel.num_elements(), per_state.num_elements());
        assert_eq!(per_state.num_elements(), 100usize.div_ceil(CHUNK) * 3 * 70 * 16);
        let short = StateTile { block: 1024, chunk: 8 };
        assert_eq!(cube::states_shape(Layout::PerState, dims, short).num_elements(), 100usize.div_ceil(8) * 3 * 70 * 16);
        assert_eq!(cube::states_shape(Layout::PerChannel, dims, short), per_channel.clone());
    }

    #[test]
    fn state_tiles_parse_and_refuse_what_does_not_fit() {
        assert_eq!(StateTile::parse("512,16"), Ok(StateTile { block: 512, chunk: 16 }));
        assert_eq!(StateTile::parse(" 1024 , 8 "), Ok(StateTile::DEFAULT));
        assert_eq!(StateTile::parse(&StateTile::DEFAULT.to_string()), Ok(StateTile::DEFAULT));
        let err = |t: &str| StateTile::parse(t).unwrap_err();
        assert!(err("512").contains("expected block,chunk"), "{}", err("512"));
        assert!(err("500,16").contains("block \"500\""), "{}", err("500,16"));
        assert!(err("512,x").contains("chunk \"x\""), "{}", err("512,x"));
        assert!(err("128,16").contains("exceeds the block"), "{}", err("128,16"));
        assert!(err("1024,16").contains("64 KB of shared memory"), "{}", err("1024,16"));
    }
}
