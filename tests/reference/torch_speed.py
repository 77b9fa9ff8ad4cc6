"""PyTorch eager timings of the configs of `icl-lab bench models`, for side-by-side numbers.

Run on the GPU machine (PyTorch and transformers are installed there; mambapy is not: carry
it as a wheel, or the Mamba rows are reported as unavailable):

    python3 tests/reference/torch_speed.py [--steps 100] [--only label,label] > torch.jsonl

Each config trains as icl-lab does: linear-regression prompts of `points` (x, y) pairs in
`n_dims` dimensions interleaved into 2·points tokens (y zero-padded to d), a Linear(d, e)
read-in, the backbone, a Linear(e, 1) read-out at the x tokens, MSE, global-norm clipping at
10, Adam at 1e-4, batch 64, fp32 (`--tf32`: matmuls in TF32, as CubeCL rounds f32 matmuls on
tensor cores; without it, PyTorch's default full-fp32 matmuls). Prints one JSON line per config: ms/step and steps/s over
the second half of the steps, seconds from the config's model build to its first finished step
(and from this script's start: only the first config's includes importing torch and CUDA
initialisation), the parameters that train, and peak GPU memory
(torch.cuda.max_memory_allocated). Configs run in one process one after another.
"""

import argparse
import json
import sys
import time

START = time.perf_counter()

import torch  # noqa: E402
from torch import nn  # noqa: E402

# Same labels and sizes as MODEL_MATRIX in src/cli/bench.rs.
CONFIGS = [
    ("gpt2-e128-l2-t82", "gpt2", dict(n_embd=128, n_layer=2, n_head=8, n_positions=101), 20, 41),
    ("mamba-e128-l4-t82", "mamba", dict(n_embd=128, n_layer=4), 20, 41),
    ("mambaformer-e128-l4-t82", "mambaformer", dict(n_embd=128, n_layer=4), 20, 41),
    ("gpt2-e256-l12-t280", "gpt2", dict(n_embd=256, n_layer=12, n_head=8, n_positions=300), 10, 140),
    ("mamba-e256-l24-t280", "mamba", dict(n_embd=256, n_layer=24), 10, 140),
    ("mamba-e128-l4-t1024", "mamba", dict(n_embd=128, n_layer=4), 20, 512),
]


def backbone(arch, sizes):
    """The backbone as a module mapping (b, t, e) to (b, t, e), or None with the reason."""
    e = sizes["n_embd"]
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2Model

        cfg = GPT2Config(n_embd=e, n_layer=sizes["n_layer"], n_head=sizes["n_head"],
                         n_positions=sizes["n_positions"], resid_pdrop=0.0, embd_pdrop=0.0,
                         attn_pdrop=0.0, use_cache=False)
        model = GPT2Model(cfg)

        class Gpt2(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, h):
                return self.model(inputs_embeds=h).last_hidden_state

        return Gpt2(), None
    if arch == "mamba":
        try:
            from mambapy.mamba import Mamba, MambaConfig
        except ImportError:
            return None, "mambapy is not installed"
        return Mamba(MambaConfig(d_model=e, n_layers=sizes["n_layer"], d_state=16, expand_factor=2, d_conv=4)), None
    return None, f"no PyTorch reference for {arch}"


def time_config(label, arch, sizes, n_dims, points, steps, device):
    config_start = time.perf_counter()
    body, why = backbone(arch, sizes)
    if body is None:
        return {"config": label, "error": why}
    e, b = sizes["n_embd"], 64
    read_in, read_out = nn.Linear(n_dims, e), nn.Linear(e, 1)
    model = nn.ModuleList([read_in, body, read_out]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    torch.cuda.reset_peak_memory_stats(device)

    def step():
        xs = torch.randn(b, points, n_dims, device=device)
        w = torch.randn(b, n_dims, 1, device=device)
        ys = (xs @ w).squeeze(-1)
        ytok = torch.zeros(b, points, n_dims, device=device)
        ytok[:, :, 0] = ys
        tokens = torch.stack([xs, ytok], dim=2).reshape(b, 2 * points, n_dims)
        pred = read_out(body(read_in(tokens)))[:, ::2, 0]
        loss = ((pred - ys) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()

    step()
    torch.cuda.synchronize(device)
    first_step_at = time.perf_counter()
    for _ in range(steps // 2 - 1):
        step()
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    timed = steps - steps // 2
    for _ in range(timed):
        step()
    torch.cuda.synchronize(device)
    ms = (time.perf_counter() - t0) / timed * 1e3
    # Only the parameters that train: GPT2Model's token embedding (50,257 x e) is never used
    # with inputs_embeds, so it gets no gradient and is not counted.
    params = sum(p.numel() for p in model.parameters() if p.grad is not None)
    return {"config": label, "params": params, "steps": steps, "ms_per_step": ms, "steps_per_s": 1e3 / ms,
            "config_to_first_step_s": first_step_at - config_start,
            "process_to_first_step_s": first_step_at - START,
            "gpu_peak_mib": torch.cuda.max_memory_allocated(device) / 2**20, "torch": torch.__version__,
            "tf32": torch.backends.cuda.matmul.allow_tf32}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--only", default=None, help="labels, comma-separated")
    ap.add_argument("--tf32", action="store_true",
                    help="let matmuls round to TF32 on tensor cores, as CubeCL's f32 matmuls do "
                         "(PyTorch's default is full fp32)")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    wanted = set(args.only.split(",")) if args.only else None
    device = torch.device("cuda:0")
    for label, arch, sizes, n_dims, points in CONFIGS:
        if wanted and label not in wanted:
            continue
        try:
            row = time_config(label, arch, sizes, n_dims, points, args.steps, device)
        except Exception as err:  # one failing config must not hide the others
            row = {"config": label, "error": repr(err)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
