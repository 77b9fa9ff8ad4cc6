#!/usr/bin/env python3
"""Compiles the CUDA C++ that `examples/cuda_source.rs` writes to sm_90 SASS and counts it.

    cargo run --release -p icl-lab-kernels --features cuda --example cuda_source -- /tmp/cu
    python3 kernels/sass.py /tmp/cu

For each kernel: registers, spills, and the instructions of each loop (a backward branch
closes a loop; the innermost loops are where a kernel spends its issue slots), by kind. The
compilers are NVIDIA's own, from their PyPI wheels (NVRTC and ptxas of CUDA 13.0, the
version on our GPU machine; cuobjdump and nvdisasm 13.5, the oldest on PyPI), downloaded once into
`--tools` (default ~/.cache/icl-lab/cuda-tools). No GPU is needed; counts are not times.
"""

import argparse
import collections
import ctypes
import glob
import os
import re
import subprocess
import sys
import zipfile
import zlib

WHEELS = [
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cuobjdump==13.5.37",
    "nvidia-cuda-nvdisasm==13.5.37",  # cuobjdump runs it
]
ARCH = "sm_90a"  # what CubeCL's CUDA runtime asks NVRTC for on an H100/H200


def tools(root):
    """Downloads and unpacks the wheels once; returns (libnvrtc, ptxas, cuobjdump, include)."""
    marker = os.path.join(root, "unpacked-%08x" % zlib.crc32(" ".join(WHEELS).encode()))
    if not os.path.exists(marker):
        os.makedirs(root, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", root, *WHEELS], check=True)
        for wheel in glob.glob(os.path.join(root, "*.whl")):
            with zipfile.ZipFile(wheel) as z:
                z.extractall(os.path.join(root, "x"))
        open(marker, "w").close()
    x = os.path.join(root, "x", "nvidia")

    def find(pattern):
        hits = sorted(glob.glob(os.path.join(x, "**", pattern), recursive=True))
        if not hits:
            sys.exit(f"{pattern} not found under {x}")
        return hits[0]

    ptxas, cuobjdump, nvdisasm = find("ptxas"), find("cuobjdump"), find("nvdisasm")
    os.environ["NVDISASM_PATH"] = os.path.dirname(nvdisasm)
    for exe in (ptxas, cuobjdump, nvdisasm):
        os.chmod(exe, 0o755)
    include = os.path.dirname(find("cuda_runtime.h"))
    return find("libnvrtc.so.13"), ptxas, cuobjdump, include


def nvrtc_ptx(lib, source, include):
    """PTX of `source`, compiled as CubeCL's CUDA runtime compiles it."""
    # NVRTC dlopens its builtins by name: load them first, from the same wheel.
    for builtins in glob.glob(os.path.join(os.path.dirname(lib), "libnvrtc-builtins.so.*")):
        ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
    nv = ctypes.CDLL(lib)
    prog = ctypes.c_void_p()
    check = lambda code, what: code == 0 or sys.exit(f"NVRTC {what} failed ({code})")
    check(nv.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), None, 0, None, None), "create")
    opts = [f"--gpu-architecture={ARCH}".encode(), f"--include-path={include}".encode(), b"-lineinfo"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    if nv.nvrtcCompileProgram(prog, len(opts), arr) != 0:
        size = ctypes.c_size_t()
        nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetProgramLog(prog, log)
        sys.exit(log.value.decode())
    size = ctypes.c_size_t()
    nv.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    nv.nvrtcGetPTX(prog, ptx)
    return ptx.value.decode()


INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def loops(sass):
    """The SASS's instructions as (address, opcode), and its loops: (start, end) address pairs
    of each backward branch."""
    instrs, spans = [], []
    for m in INSTR.finditer(sass):
        addr, op, args = int(m.group(1), 16), m.group(3), m.group(4)
        instrs.append((addr, op))
        if op.startswith("BRA"):
            target = re.search(r"0x([0-9a-f]+)", args)
            if target and int(target.group(1), 16) < addr:
                spans.append((int(target.group(1), 16), addr))
    return instrs, spans


KINDS = [("FP32", ("FADD", "FMUL", "FFMA", "FMNMX", "FSEL", "FSETP")), ("MUFU", ("MUFU",)), ("SHFL", ("SHFL",)),
         ("LDG", ("LDG",)), ("STG", ("STG",)), ("SMEM", ("LDS", "STS")), ("INT", ("IMAD", "IADD3", "LEA", "LOP3", "SHF", "ISETP", "SEL", "IMNMX")),
         ("MOV", ("MOV", "UMOV"))]


def kind_counts(ops):
    c = collections.Counter()
    for op in ops:
        base = op.split(".")[0]
        c[next((k for k, names in KINDS if base in names), "other")] += 1
    return " ".join(f"{k} {c[k]}" for k, _ in KINDS + [("other", ())] if c[k])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="directory of .cu files (examples/cuda_source.rs)")
    ap.add_argument("--tools", default=os.path.expanduser("~/.cache/icl-lab/cuda-tools"))
    ap.add_argument("--only", default="", help="substring of the kernel files to compile")
    ap.add_argument("--keep", action="store_true", help="write .ptx and .sass beside each .cu")
    args = ap.parse_args()
    lib, ptxas, cuobjdump, include = tools(args.tools)
    for cu in sorted(glob.glob(os.path.join(args.src, "*.cu"))):
        if args.only not in os.path.basename(cu):
            continue
        base = cu[:-3]
        ptx = nvrtc_ptx(lib, open(cu).read(), include)
        open(base + ".ptx", "w").write(ptx)
        info = subprocess.run([ptxas, f"-arch={ARCH}", "-v", base + ".ptx", "-o", base + ".cubin"], capture_output=True, text=True, check=True).stderr
        regs = re.search(r"Used (\d+) registers", info)
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
        sass = subprocess.run([cuobjdump, "-sass", base + ".cubin"], capture_output=True, text=True, check=True).stdout
        instrs, spans = loops(sass)
        print(f"{os.path.basename(cu)}: {len(instrs)} instructions, {regs.group(1) if regs else '?'} registers, spills {spill.group(1) if spill else '?'}/{spill.group(2) if spill else '?'} B")
        # Innermost loops first: those that contain no other loop.
        for lo, hi in sorted(spans, key=lambda s: s[1] - s[0]):
            inner = any(a > lo and b < hi for a, b in spans)
            body = [op for addr, op in instrs if lo <= addr <= hi]
            print(f"  loop {lo:#06x}-{hi:#06x}{'' if inner else ' (innermost)'}: {len(body)} instructions: {kind_counts(body)}")
        if args.keep:
            open(base + ".sass", "w").write(sass)
        else:
            for ext in (".ptx", ".cubin"):
                os.remove(base + ext)


if __name__ == "__main__":
    main()
