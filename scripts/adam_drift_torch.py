"""adam_drift_torch.py — PyTorch's side of scripts/adam_drift.lua (same problem, same
printout): how far torch.optim.Adam in float32 drifts from the same run in float64.

    /usr/bin/python3 scripts/adam_drift_torch.py [steps [n [lr]]]   (defaults 1000 1000 0.01)
"""
import math
import sys

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01


def run(dtype, make):
    a = torch.tensor([1 + (i % 7) / 3 for i in range(1, n + 1)], dtype=torch.float64).to(dtype)
    c = torch.tensor([math.sin(i) for i in range(1, n + 1)], dtype=torch.float64).to(dtype)
    w = torch.zeros(n, dtype=dtype, requires_grad=True)
    opt = make([w])
    traj = []
    for t in range(1, steps + 1):
        s = torch.tensor([0.1 * math.sin(0.37 * i + 0.11 * t) for i in range(1, n + 1)],
                         dtype=torch.float64).to(dtype)
        with torch.no_grad():
            w.grad = (w - c) * a + s
        opt.step()
        traj.append(w.detach().to(torch.float64).clone())
    return traj


for name, make in [("Adam", lambda p: torch.optim.Adam(p, lr=lr)),
                   ("AdamW", lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=0.01))]:
    t32, t64 = run(torch.float32, make), run(torch.float64, make)
    worst = max((x - y).abs().max().item() for x, y in zip(t32, t64))
    final = (t32[-1] - t64[-1]).abs().max().item()
    scale = t64[-1].abs().max().item()
    print("torch    %-5s float32 vs float64, %d steps, n %d, lr %g: final max|dw| %.3e "
          "(relative %.3e), worst over the run %.3e" % (name, steps, n, lr, final, final / scale, worst))
