// The CUDA built-ins the CUDA C++ of CubeCL kernels uses, for running it on the CPU. Every GPU
// thread of a cube is a fiber (ucontext) on one OS thread: a warp's shuffles and the cube's
// `__syncthreads` are barriers where a fiber yields until its warp (or cube) has arrived.
// Cubes run in parallel on the host's cores. Exact in what it computes (fp32 as on the GPU,
// `__expf` as `expf`), not in timing or memory ordering: for checking what kernels compute
// with no GPU. See mod.rs beside it.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __grid_constant__
#define __align__(n) alignas(n)
#define __shared__

struct uint3 {
    unsigned int x, y, z;
};
inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return {x, y, z}; }

namespace emu {
// Fibers that wait for each other: a warp, or the whole cube.
struct Group {
    unsigned int live = 0, arrived = 0, generation = 0;
};

struct Fiber {
    ucontext_t context;
    bool done = false;
};

struct Cube {
    std::vector<Fiber> fibers;
    std::vector<char> stacks;
    std::vector<Group> warps;
    Group all;
    std::vector<uint64_t> lanes;  // a shuffle's values, one slot per thread
    std::vector<uint32_t> mma;    // an mma's operands, six per thread (icl_mma)
    ucontext_t scheduler;
    const std::function<void()> *kernel = nullptr;
    uint64_t progress = 0;  // barriers completed and fibers finished, to detect a deadlock
};

constexpr size_t STACK = 64 * 1024;
}  // namespace emu

inline thread_local uint3 threadIdx, blockIdx;
inline uint3 blockDim, gridDim;
inline thread_local emu::Cube *emu_cube;
inline thread_local unsigned int emu_thread;
constexpr unsigned int warpSize = 32;
// The running cube's shared memory (one cube at a time on each OS thread).
alignas(16) inline thread_local unsigned char dynamic_shared_mem[232448];

using std::max;
using std::min;
// CUDA's abs has float overloads; C's global abs(int) alone would truncate a float.
using std::abs;

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
// CUDA's atomicAdd (burn's whole-tensor sum ends in one): cubes run on several OS threads at
// once, so it must be atomic here too.
inline float atomicAdd(float *p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline int atomicAdd(int *p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline unsigned int atomicAdd(unsigned int *p, unsigned int v) { return std::atomic_ref<unsigned int>(*p).fetch_add(v); }
// The high 32 bits of a 64-bit product (CubeCL's fast division of broadcast indices).
inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }

namespace emu {
inline void yield() { swapcontext(&emu_cube->fibers[emu_thread].context, &emu_cube->scheduler); }

// Arrives at `g` and waits (yielding) until every live fiber of it has arrived.
inline void arrive_and_wait(Group &g) {
    unsigned int generation = g.generation;
    if (++g.arrived == g.live) {
        g.arrived = 0;
        ++g.generation;
        ++emu_cube->progress;
        return;
    }
    while (g.generation == generation) yield();
}

// A fiber that has finished no longer holds up `g`.
inline void drop(Group &g) {
    --g.live;
    if (g.live > 0 && g.arrived == g.live) {
        g.arrived = 0;
        ++g.generation;
    }
}

inline Group &warp() { return emu_cube->warps[emu_thread / 32]; }

template <typename T>
inline T exchange(T value, unsigned int from) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a wide type");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    emu_cube->lanes[emu_thread] = bits;
    arrive_and_wait(warp());
    uint64_t got = emu_cube->lanes[from];
    // Nobody overwrites a slot before every lane has read its partner's.
    arrive_and_wait(warp());
    T out;
    std::memcpy(&out, &got, sizeof(T));
    return out;
}
}  // namespace emu

inline void __syncthreads() { emu::arrive_and_wait(emu_cube->all); }
inline void __syncwarp(unsigned int = 0xffffffffu) { emu::arrive_and_wait(emu::warp()); }

template <typename T>
inline T __shfl_xor_sync(unsigned int, T value, int mask, int = 32) {
    return emu::exchange(value, (emu_thread & ~31u) | ((emu_thread & 31u) ^ static_cast<unsigned int>(mask)));
}

template <typename T>
inline T __shfl_sync(unsigned int, T value, int src, int = 32) {
    return emu::exchange(value, (emu_thread & ~31u) | (static_cast<unsigned int>(src) & 31u));
}

namespace emu {
inline void fiber_main() {
    (*emu_cube->kernel)();
    Cube &cube = *emu_cube;
    cube.fibers[emu_thread].done = true;
    ++cube.progress;
    drop(cube.warps[emu_thread / 32]);
    drop(cube.all);
    // Returning resumes the scheduler (uc_link).
}

// Runs one cube: its threads as fibers, round robin, each until it waits or finishes.
inline void run_cube(Cube &cube, uint3 block, uint3 index) {
    unsigned int threads = block.x * block.y * block.z;
    cube.fibers.assign(threads, Fiber{});
    cube.stacks.resize(threads * STACK);
    cube.warps.assign((threads + 31) / 32, Group{});
    for (unsigned int w = 0; w < cube.warps.size(); ++w) cube.warps[w].live = std::min(32u, threads - w * 32);
    cube.all = Group{threads, 0, 0};
    cube.lanes.assign(threads, 0);
    cube.mma.assign(threads * 6, 0);
    std::memset(dynamic_shared_mem, 0, sizeof dynamic_shared_mem);
    emu_cube = &cube;
    blockIdx = index;
    for (unsigned int t = 0; t < threads; ++t) {
        Fiber &f = cube.fibers[t];
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = cube.stacks.data() + t * STACK;
        f.context.uc_stack.ss_size = STACK;
        f.context.uc_link = &cube.scheduler;
        makecontext(&f.context, fiber_main, 0);
    }
    for (bool running = true; running;) {
        running = false;
        uint64_t before = cube.progress;
        bool waiting = false;
        for (unsigned int t = 0; t < threads; ++t) {
            if (cube.fibers[t].done) continue;
            running = true;
            emu_thread = t;
            threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            swapcontext(&cube.scheduler, &cube.fibers[t].context);
            waiting |= !cube.fibers[t].done;
        }
        if (running && waiting && cube.progress == before) {
            std::fprintf(stderr, "emulated kernel: every thread of cube (%u, %u, %u) waits at a barrier the others never reach\n", index.x, index.y, index.z);
            std::abort();
        }
    }
}

// Runs `kernel` over a grid of `grid` cubes of `block` threads, cubes spread over the cores.
inline void launch(uint3 grid, uint3 block, const std::function<void()> &kernel) {
    gridDim = grid;
    blockDim = block;
    unsigned int cubes = grid.x * grid.y * grid.z;
    std::atomic<unsigned int> next{0};
    auto worker = [&] {
        Cube cube;
        cube.kernel = &kernel;
        for (unsigned int c = next++; c < cubes; c = next++) {
            uint3 index{c % grid.x, (c / grid.x) % grid.y, c / (grid.x * grid.y)};
            run_cube(cube, block, index);
        }
    };
    unsigned int threads = std::max(1u, std::min(std::thread::hardware_concurrency(), cubes));
    std::vector<std::thread> pool;
    for (unsigned int i = 1; i < threads; ++i) pool.emplace_back(worker);
    worker();
    for (auto &t : pool) t.join();
}
}  // namespace emu

// The PTX that icl-lab's own kernels (kernels/src/gemm, kernels/src/scan/source.rs) write as
// inline assembly on a GPU, here in C++: TF32 rounding, the warp's `mma.sync.m16n8k8`,
// `cp.async` (a plain copy: a cube's threads interleave only at barriers, and the kernel waits
// at one before reading) and `ex2.approx.ftz`.
#define ICL_LAB_EMULATED 1

inline uint32_t icl_tf32(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    // As on the GPU: half a unit added below the 13 bits the tensor cores ignore, which they
    // then drop (nearest, ties away from zero).
    return (bits + 0x1000u) & 0xffffe000u;
}

// c += a b for the calling thread's warp: a 16x8 (row-major fragments), b 8x8 (column), c
// 16x8, as PTX lays them out: with g = lane / 4 and t = lane % 4, a = (g, t), (g + 8, t),
// (g, t + 4), (g + 8, t + 4); b = (t, g), (t + 4, g); c = (g, 2t), (g, 2t + 1), (g + 8, 2t),
// (g + 8, 2t + 1).
inline void icl_mma(float *c, const uint32_t *a, const uint32_t *b) {
    emu::Cube &cube = *emu_cube;
    uint32_t *mine = &cube.mma[emu_thread * 6];
    for (int i = 0; i < 4; ++i) mine[i] = a[i];
    mine[4] = b[0];
    mine[5] = b[1];
    emu::arrive_and_wait(emu::warp());
    const unsigned base = emu_thread & ~31u, lane = emu_thread & 31u, g = lane / 4, t = lane % 4;
    auto value = [&](unsigned from, unsigned slot) {
        float v;
        std::memcpy(&v, &cube.mma[(base + from) * 6 + slot], 4);
        return v;
    };
    auto a_at = [&](unsigned r, unsigned k) { return value((r % 8) * 4 + k % 4, (r >= 8 ? 1 : 0) + (k >= 4 ? 2 : 0)); };
    auto b_at = [&](unsigned k, unsigned n) { return value(n * 4 + k % 4, 4 + (k >= 4 ? 1 : 0)); };
    for (unsigned i = 0; i < 4; ++i) {
        const unsigned r = g + (i >= 2 ? 8 : 0), n = 2 * t + (i & 1);
        float sum = c[i];
        for (unsigned k = 0; k < 8; ++k) sum = std::fma(a_at(r, k), b_at(k, n), sum);
        c[i] = sum;
    }
    // Nobody overwrites their operands before every lane has read them.
    emu::arrive_and_wait(emu::warp());
}

inline void icl_cp_async16(float *dst, const float *src, bool valid) {
    if (valid)
        std::memcpy(dst, src, 16);
    else
        std::memset(dst, 0, 16);
}
inline void icl_cp_async_commit() {}
// The scan's ex2.approx.ftz.f32 (kernels/src/scan/source.rs): 2^x, subnormal results as 0.
inline float icl_ex2(float x) {
    const float y = std::exp2(x);
    return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}
template <int N>
inline void icl_cp_async_wait() {}
// The scan's prefetch.global.L2 and .L1: hints, nothing to do here.
inline void icl_prefetch_l2(const void *) {}
inline void icl_prefetch_l1(const void *) {}
