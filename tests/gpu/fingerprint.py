"""The kernels' fingerprint of a checkout, as kernels/build.rs computes it (FNV-1a over every
.rs file under kernels/src, path and bytes in sorted order, then the locked burn, CubeCL and
cubek versions): the last part of a kernel-cache key such as sm_90-nvrtc13.0-<fingerprint>.
A shipped seed (kernels/seed/, SEEDS in src/runtime/kernel_cache.rs) is used only when its key
names this fingerprint, so check a seed from the GPU machine against the commit that ships it:

    python3 tests/gpu/fingerprint.py            # this checkout
    python3 tests/gpu/fingerprint.py --check    # and whether kernels/seed/ holds its seed
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASK = (1 << 64) - 1


def fnv1a(h, data):
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & MASK
    return h


def kernel_generators(lock):
    found = []
    for block in lock.split("[[package]]"):
        def field(key):
            for line in block.splitlines():
                if line.startswith(key):
                    return line[len(key):].lstrip(" =").strip().strip('"')
            return None
        name, version = field("name "), field("version ")
        if name and version and name.startswith(("burn", "cubecl", "cubek")):
            found.append(f"{name} {version}\n")
    return sorted(found)


def fingerprint(root=ROOT):
    kernels = os.path.join(root, "kernels")
    files = []
    for directory, _, names in os.walk(os.path.join(kernels, "src")):
        files += [os.path.join(directory, n) for n in names if n.endswith(".rs")]
    # build.rs sorts full paths, which orders like their relative paths under kernels/.
    h = 0xCBF29CE484222325
    for path in sorted(files):
        h = fnv1a(h, os.path.relpath(path, kernels).replace(os.sep, "/").encode())
        with open(path, "rb") as f:
            h = fnv1a(h, f.read())
    with open(os.path.join(root, "Cargo.lock")) as f:
        for package in kernel_generators(f.read()):
            h = fnv1a(h, package.encode())
    return f"{h:016x}"


if __name__ == "__main__":
    fp = fingerprint()
    print(fp)
    if "--check" in sys.argv[1:]:
        seeds = os.listdir(os.path.join(ROOT, "kernels", "seed"))
        matching = [s for s in seeds if s.endswith(f"-{fp}.cbor.gz")]
        print("seed:", ", ".join(matching) if matching else f"none of {seeds} is this checkout's")
        sys.exit(0 if matching else 1)
