"""torch_data.py -- Fashion-MNIST for the PyTorch sides of the benchmarks
(autograd_torch.py, torch_train.py): the idx files of /usr/share/datasets/fashion-mnist/
as torch tensors, read as moonstep's ms.data.fashion_mnist reads them.
"""
import gzip

import numpy as np
import torch

ROOT = "/usr/share/datasets/fashion-mnist/"


def idx(name):
    """The idx file ROOT/name (gzip) as a uint8 numpy array of its shape."""
    with gzip.open(ROOT + name) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(shape):
    """(x_train, y_train, x_test, y_test): the images float32 in [0, 1] reshaped to shape
    ((-1, 784) or (-1, 1, 28, 28)), the labels int64. The images are scaled in place: no
    second copy of them sets the peak memory."""
    xtr = torch.tensor(idx("train-images-idx3-ubyte.gz").reshape(shape), dtype=torch.float32).div_(255)
    ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz"), dtype=torch.int64)
    xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz").reshape(shape), dtype=torch.float32).div_(255)
    yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz"), dtype=torch.int64)
    return xtr, ytr, xte, yte
