"""torch_optim.py — PyTorch's side of scripts/bench/optim.lua, run with Debian's python3.

The same models (parameter shapes) and hyper-parameters as optim.lua; gradients are set
once, then only optimizer.step() (or zero_grad) is timed. Each optimizer is timed with
foreach=False and foreach=True (the Lua side keeps the faster).
Prints one line per measurement: "op model threads foreach seconds_per_step"
(the median of SAMPLES samples), ops adam, adamw, sgd_momentum, zero_grad.
Usage: python3 torch_optim.py THREADS[,THREADS...] SAMPLES [MODEL ...]
"""
import statistics
import sys
import time

import torch

# parameter shapes, as optim.lua builds them
MODELS = {
    # 8 x Linear(2048, 2048): 33.6M parameters (DRAM-resident)
    "big": [s for _ in range(8) for s in ((2048, 2048), (2048,))],
    # 784-512-512-10 MLP: 670K parameters (cache-resident)
    "small": [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)],
}


def median_step(f, samples):
    """Median over samples of the time per call, each sample ~0.15 s of calls."""
    t0 = time.perf_counter()
    f()
    one = time.perf_counter() - t0
    reps = max(1, int(0.15 / max(one, 1e-7)))
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        out.append((time.perf_counter() - t0) / reps)
    return statistics.median(out)


def make_params(shapes):
    gen = torch.Generator().manual_seed(0)
    ps = []
    for s in shapes:
        p = torch.randn(*s, generator=gen) * 0.05
        p.requires_grad_(True)
        p.grad = torch.randn(*s, generator=gen) * 0.01
        ps.append(p)
    return ps


def optimizers(ps, foreach):
    return {
        "adam": lambda: torch.optim.Adam(ps, lr=1e-3, foreach=foreach),
        "adamw": lambda: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, foreach=foreach),
        "sgd_momentum": lambda: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=foreach),
    }


def main():
    threads = [int(t) for t in sys.argv[1].split(",")]
    samples = int(sys.argv[2])
    models = sys.argv[3:] or list(MODELS)
    for name in models:
        ps = make_params(MODELS[name])
        for nth in threads:
            torch.set_num_threads(nth)
            for foreach in (False, True):
                for op, make in optimizers(ps, foreach).items():
                    opt = make()
                    with torch.no_grad():
                        opt.step()          # state created (first step), not timed
                        t = median_step(opt.step, samples)
                    print(op, name, nth, int(foreach), t, flush=True)
                    del opt
            # zero_grad keeping the tensors (set_to_none=False fills zeros, as moonstep does)
            opt = torch.optim.SGD(ps, lr=0.01)
            t = median_step(lambda: opt.zero_grad(set_to_none=False), samples)
            print("zero_grad", name, nth, 1, t, flush=True)
        del ps


if __name__ == "__main__":
    main()
