"""cuBLAS (PyTorch, TF32 allowed) on one GPT-2 block's linears: forward, dx, batched dw; ms, median of reps."""
import sys, torch
torch.backends.cuda.matmul.allow_tf32 = True
b, t, e = map(int, sys.argv[1].split(','))
reps = 20
def med(f):
    for _ in range(3): f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); en.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(en))
    ts.sort(); return ts[len(ts)//2]
tot = {'forward': 0, 'dx': 0, 'dw': 0}
flops = 0
for i, o in [(e, 3*e), (e, e), (e, 4*e), (4*e, e)]:
    x = torch.randn(b, t, i, device='cuda'); w = torch.randn(i, o, device='cuda'); dy = torch.randn(b, t, o, device='cuda')
    tot['forward'] += med(lambda: x @ w)
    tot['dx'] += med(lambda: dy @ w.t())
    tot['dw'] += med(lambda: x.reshape(-1, i).t() @ dy.reshape(-1, o))
    flops += 2 * b * t * i * o
print(f"torch {torch.__version__} cuBLAS TF32 at {b},{t},{e}: forward {tot['forward']:.3f} ms ({flops/tot['forward']/1e9:.1f} TFLOP/s) dx {tot['dx']:.3f} dw {tot['dw']:.3f}")
