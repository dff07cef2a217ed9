"""autograd_torch.py -- PyTorch's side of scripts/bench/autograd.lua (Debian python3-torch).

A step server, so that PyTorch's steps alternate with moonstep's in small blocks (the
machine is shared: both sides then see the same load). It sets a case up, prints
"ready", then answers each line of stdin:
  run K    runs K more steps; prints "times T1 ... TK" (seconds per step; rosen: K times
           the block's mean, the steps being too short to time one by one)
  end      prints the case's "result ..." line and exits

Cases (THREADS: torch.set_num_threads):
  mlp THREADS BATCH DIR
      MLP 784-256-10 (Linear, ReLU, Linear), CrossEntropyLoss, Adam lr 1e-3, on
      Fashion-MNIST, started from moonstep's initial weights (DIR/init.bin: W1 [256, 784],
      b1 [256], W2 [10, 256], b2 [10], float32, in that order) and fed moonstep's batch
      order (DIR/order.bin: int64, moonstep's 1-based row indices, a permutation of the
      training set). A step (timed after its batch gather, as moonstep's): zero_grad,
      forward, loss, backward, Adam.
      end: result case=mlp steps=S acc=A (on the first DIR/ntest.txt test images)
  rosen THREADS LR
      Rosenbrock in 2-D, p float64 [2] from (-1.5, 2), torch.optim.Adam(lr = LR); a step:
      zero_grad, the loss, loss.backward(), step.
      end: result case=rosen steps=S x=.. y=.. f=.. (f at the final point)
"""
import sys
import time

import numpy as np
import torch
import torch.nn as nn

from torch_data import fashion_mnist


def mlp(batch, d):
    """Returns (run(k) -> per-step seconds, finish() -> result line)."""
    xtr, ytr, xte, yte = fashion_mnist((-1, 784))
    with open(d + "/ntest.txt") as f:
        ntest = int(f.read())
    w = torch.from_numpy(np.fromfile(d + "/init.bin", dtype=np.float32).copy())
    order = torch.from_numpy(np.fromfile(d + "/order.bin", dtype=np.int64).copy()) - 1
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        at = 0
        for p in (model[0].weight, model[0].bias, model[2].weight, model[2].bias):
            p.copy_(w[at:at + p.numel()].view_as(p))
            at += p.numel()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    n = len(order)
    state = {"s": 0}

    def run(k):
        times = []
        for _ in range(k):
            i = (state["s"] * batch) % n
            sel = order[i:i + batch]
            x, y = xtr[sel], ytr[sel]
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
            state["s"] += 1
        return times

    def finish():
        correct = 0
        with torch.no_grad():
            for i in range(0, ntest, batch):
                j = min(i + batch, ntest)
                correct += (model(xte[i:j]).argmax(1) == yte[i:j]).sum().item()
        return "result case=mlp steps=%d acc=%.4f" % (state["s"], correct / ntest)

    return run, finish


def rosen(lr):
    p = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr)
    state = {"s": 0}

    def run(k):
        t0 = time.perf_counter()
        for _ in range(k):
            opt.zero_grad()
            loss = (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2
            loss.backward()
            opt.step()
        state["s"] += k
        return [(time.perf_counter() - t0) / k] * k

    def finish():
        x, y = p.tolist()
        fxy = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        return "result case=rosen steps=%d x=%.17g y=%.17g f=%.6g" % (state["s"], x, y, fxy)

    return run, finish


def main():
    case, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    if case == "mlp":
        run, finish = mlp(int(sys.argv[3]), sys.argv[4])
    elif case == "rosen":
        run, finish = rosen(float(sys.argv[3]))
    else:
        sys.exit("autograd_torch.py: unknown case " + case)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd and cmd[0] == "run":
            print("times " + " ".join("%.9g" % t for t in run(int(cmd[1]))), flush=True)
        elif cmd and cmd[0] == "end":
            print(finish(), flush=True)
            return
        else:
            sys.exit("autograd_torch.py: unknown command " + line.strip())


main()
