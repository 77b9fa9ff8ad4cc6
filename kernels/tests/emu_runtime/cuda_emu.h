// The CUDA built-ins the CUDA C++ of CubeCL kernels uses, for running it on the CPU: every
// thread of a cube is an OS thread, a warp's shuffles meet at a barrier of its 32 threads,
// `__syncthreads` at one of the cube's. Slow and exact in what it computes (fp32 as on the
// GPU, `__expf` as `expf`), not in timing or memory ordering: for checking what kernels
// compute with no GPU. See mod.rs beside it.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
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
struct Cube {
    std::barrier<> *all;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<uint64_t> lanes;  // a shuffle's values, one slot per thread
};
}  // namespace emu

inline thread_local uint3 threadIdx, blockIdx;
inline uint3 blockDim, gridDim;
inline thread_local emu::Cube *emu_cube;
inline thread_local unsigned int emu_thread;
constexpr unsigned int warpSize = 32;
// The cube's shared memory (cubes run one at a time).
alignas(16) inline unsigned char dynamic_shared_mem[232448];

using std::max;
using std::min;

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }

inline void __syncthreads() { emu_cube->all->arrive_and_wait(); }
inline void __syncwarp(unsigned int = 0xffffffffu) { emu_cube->warps[emu_thread / 32]->arrive_and_wait(); }

// Every lane writes its value, waits for the warp, reads its partner's, waits again (so no
// lane overwrites its slot before the partner has read it).
template <typename T>
inline T __shfl_xor_sync(unsigned int, T value, int mask, int = 32) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a wide type");
    auto &warp = *emu_cube->warps[emu_thread / 32];
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    emu_cube->lanes[emu_thread] = bits;
    warp.arrive_and_wait();
    unsigned int partner = (emu_thread & ~31u) | ((emu_thread & 31u) ^ static_cast<unsigned int>(mask));
    T out;
    uint64_t got = emu_cube->lanes[partner];
    std::memcpy(&out, &got, sizeof(T));
    warp.arrive_and_wait();
    return out;
}

template <typename T>
inline T __shfl_sync(unsigned int, T value, int src, int = 32) {
    auto &warp = *emu_cube->warps[emu_thread / 32];
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    emu_cube->lanes[emu_thread] = bits;
    warp.arrive_and_wait();
    T out;
    uint64_t got = emu_cube->lanes[(emu_thread & ~31u) | (static_cast<unsigned int>(src) & 31u)];
    std::memcpy(&out, &got, sizeof(T));
    warp.arrive_and_wait();
    return out;
}

namespace emu {
// Runs `kernel` over a grid of `grid` cubes of `block` threads, one cube after another.
inline void launch(uint3 grid, uint3 block, const std::function<void()> &kernel) {
    gridDim = grid;
    blockDim = block;
    unsigned int threads = block.x * block.y * block.z;
    for (unsigned int z = 0; z < grid.z; ++z)
        for (unsigned int y = 0; y < grid.y; ++y)
            for (unsigned int x = 0; x < grid.x; ++x) {
                std::barrier<> all(threads);
                Cube cube{&all, {}, std::vector<uint64_t>(threads)};
                for (unsigned int w = 0; w < (threads + 31) / 32; ++w)
                    cube.warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - w * 32)));
                std::memset(dynamic_shared_mem, 0, sizeof dynamic_shared_mem);
                std::vector<std::thread> pool;
                for (unsigned int t = 0; t < threads; ++t)
                    pool.emplace_back([&, t] {
                        emu_cube = &cube;
                        emu_thread = t;
                        blockIdx = {x, y, z};
                        threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        kernel();
                        // A thread that leaves early no longer holds up the others' barriers.
                        cube.warps[t / 32]->arrive_and_drop();
                        all.arrive_and_drop();
                    });
                for (auto &th : pool) th.join();
            }
}
}  // namespace emu
