"""torch_train.py -- PyTorch's side of scripts/bench/train.lua (Debian python3-torch).

One epoch of Adam (lr 1e-3) on Fashion-MNIST with the same model, batch size and
thread count; prints "samples_per_s X accuracy Y" per model.
Usage: python3 torch_train.py THREADS BATCH HIDDEN[,HIDDEN...] [HIDDEN...]
"""
import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(int(sys.argv[1]))
batch = int(sys.argv[2])
root = "/usr/share/datasets/fashion-mnist/"


def idx(name):
    with gzip.open(root + name) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


xtr = torch.tensor(idx("train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz"), dtype=torch.int64)
xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz"), dtype=torch.int64)

for spec in sys.argv[3:]:
    torch.manual_seed(0)
    sizes = [784] + [int(h) for h in spec.split(",")] + [10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    perm = torch.randperm(len(xtr))
    t0 = time.perf_counter()
    for i in range(0, len(xtr), batch):
        sel = perm[i:i + batch]
        x, y = xtr[sel], ytr[sel]
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(spec, "samples_per_s", len(xtr) / secs, "accuracy", acc, flush=True)
