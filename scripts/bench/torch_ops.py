"""torch_ops.py — PyTorch's side of scripts/bench/core.lua, run with Debian's python3.

Prints one line per measurement, "name seconds", for the same operations and sizes:
  tiny_add_      in-place add of two 1-element tensors (per-op overhead)
  tiny_add       out-of-place add of two 1-element tensors
  add_32M        out-of-place add over 32M floats
Usage: python3 torch_ops.py THREADS
"""
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]))


def best(f, reps):
    """Best of 5 runs of reps calls, in seconds per call."""
    out = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        out = min(out, (time.perf_counter() - t0) / reps)
    return out


a, b = torch.ones(1), torch.ones(1)
print("tiny_add_", best(lambda: a.add_(b), 100000))
print("tiny_add", best(lambda: a + b, 100000))
n = 32 * 1024 * 1024
x, y = torch.rand(n), torch.rand(n)
z = torch.empty(n)
print("add_32M", best(lambda: torch.add(x, y, out=z), 5))
