"""torch_train.py -- PyTorch's side of scripts/bench/train.lua (Debian python3-torch).

One case per process (so that its peak memory is its own): the same model as moonstep's,
Adam (lr 1e-3), batch BATCH, THREADS intra-op threads, Fashion-MNIST shuffled, STEPS
steps (0: one epoch). Each step (batch gather, zero_grad, forward, loss, backward, Adam)
is timed alone; the accuracy on the test set is taken in batches of BATCH (so that the
evaluation does not set the peak). Prints one line:
  result case=C steps=S step_ms=MEDIAN epoch_s=TOTAL acc=A peak_kb=VmHWM
Usage: python3 torch_train.py THREADS BATCH CASE STEPS   (CASE: mlp1 | mlp2 | cnn)
"""
import statistics
import sys
import time

import torch
import torch.nn as nn

from torch_data import fashion_mnist

threads, batch, case, steps = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)

shape = (-1, 1, 28, 28) if case == "cnn" else (-1, 784)
xtr, ytr, xte, yte = fashion_mnist(shape)


def mlp(hidden):
    sizes = [784] + hidden + [10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


torch.manual_seed(0)
if case == "mlp1":
    model = mlp([256])
elif case == "mlp2":
    model = mlp([512, 512])
else:  # the CNN of scripts/train.lua
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
crit = nn.CrossEntropyLoss()

n = len(xtr)
per_epoch = (n + batch - 1) // batch
steps = steps if steps > 0 else per_epoch
times = []
perm = torch.randperm(n)
t_all = time.perf_counter()
t = t_all
for s in range(steps):
    i = (s % per_epoch) * batch
    if s > 0 and i == 0:
        perm = torch.randperm(n)
    sel = perm[i:i + batch]
    x, y = xtr[sel], ytr[sel]
    opt.zero_grad()
    loss = crit(model(x), y)
    loss.backward()
    opt.step()
    now = time.perf_counter()
    times.append(now - t)
    t = now
total = time.perf_counter() - t_all

correct = 0
with torch.no_grad():
    for i in range(0, len(xte), batch):
        correct += (model(xte[i:i + batch]).argmax(1) == yte[i:i + batch]).sum().item()
acc = correct / len(xte)

peak = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
print("result case=%s steps=%d step_ms=%.4f epoch_s=%.4f acc=%.4f peak_kb=%d"
      % (case, steps, statistics.median(times) * 1e3, total, acc, peak), flush=True)
