#!/usr/bin/python3
"""zo_numpy.py (bench) -- the competitors of scripts/bench/zo.lua's batched section, one
SPSA step of the Zeroth-Learn setting timed in numpy:

  ours (default)   our own numpy float32 re-implementation of the step that moonstep's
                   opt:step(x, y) takes with optim.SPSA.preset('zeroth_learn'): MLP
                   784-128-10 (ReLU, cross-entropy), batch 50, T = 50 fresh Rademacher
                   directions, forward differences (nominal + T models in one batched
                   pass: the clean first-layer GEMM shared, the T perturbation products
                   in one GEMM, the second layer as a stacked matmul), g = U^T s / T, Adam.
  --zeroth-learn DIR   Zeroth-Learn's own code (read-only checkout at DIR): its
                   ZerothOrderNeuralNetwork ('XS' network), SimultaneousPerturbation
                   (dA 1e-8, T = 50, rademacher_matrix), ZerothOrderAdam (1e-3, 0.9,
                   0.99, 1e-8) and CrossEntropy; one do_descent call per step (float64,
                   as it runs). Its package imports matplotlib, pandas and cycler for
                   plotting only; when they are missing, inert stand-ins are put in
                   sys.modules (nothing is installed, the step never touches them).

Prints one line:  ms_per_step MEDIAN SAMPLE1 SAMPLE2 ...   (median of the samples).
Run with OPENBLAS_NUM_THREADS=1 (zo.lua sets it) for the one-thread comparison.
  /usr/bin/python3 scripts/bench/zo_numpy.py [--samples N] [--steps K] [--zeroth-learn DIR]
"""
import argparse
import sys
import time
import types

import numpy as np


def parse():
    p = argparse.ArgumentParser()
    p.add_argument('--samples', type=int, default=5)
    p.add_argument('--steps', type=int, default=10, help='steps per sample')
    p.add_argument('--zeroth-learn', dest='zl', default=None)
    p.add_argument('--batch', type=int, default=50)
    p.add_argument('--T', type=int, default=50)
    p.add_argument('--hidden', type=int, default=128)
    return p.parse_args()


class OurStep:
    """The step of moonstep's zeroth_learn preset, float32, written for numpy."""

    def __init__(self, B, T, nin, hid, C, seed=0):
        self.rng = np.random.default_rng(seed)
        f = np.float32
        lim1, lim2 = 1 / np.sqrt(nin), 1 / np.sqrt(hid)
        # one flat arena, as moonstep's: W1 [hid, nin], b1 [hid], W2 [C, hid], b2 [C]
        self.sizes = [hid * nin, hid, C * hid, C]
        self.d = sum(self.sizes)
        self.w = np.empty(self.d, f)
        o = np.cumsum([0] + self.sizes)
        self.off = o
        self.w[o[0]:o[1]] = self.rng.uniform(-lim1, lim1, self.sizes[0])
        self.w[o[1]:o[2]] = self.rng.uniform(-lim1, lim1, hid)
        self.w[o[2]:o[3]] = self.rng.uniform(-lim2, lim2, self.sizes[2])
        self.w[o[3]:o[4]] = self.rng.uniform(-lim2, lim2, C)
        self.B, self.T, self.nin, self.hid, self.C = B, T, nin, hid, C
        self.U = np.empty((T, self.d), f)
        self.m = np.zeros(self.d, f)
        self.v = np.zeros(self.d, f)
        self.tmp = np.empty(self.d, f)
        self.t = 0
        self.h, self.lr, self.b1, self.b2, self.eps = 1e-3, 1e-3, 0.9, 0.99, 1e-8
        self.x = self.rng.random((B, nin), dtype=f)
        self.y = (np.arange(B) * 7) % C

    def views(self, a):
        """(W1, b1, W2, b2) views of a flat [..., d] array."""
        o, lead = self.off, a.shape[:-1]
        return (a[..., o[0]:o[1]].reshape(lead + (self.hid, self.nin)),
                a[..., o[1]:o[2]],
                a[..., o[2]:o[3]].reshape(lead + (self.C, self.hid)),
                a[..., o[3]:o[4]])

    def step(self):
        B, T, hid, h = self.B, self.T, self.hid, self.h
        # T fresh Rademacher directions: one random bit per element
        bits = np.unpackbits(self.rng.integers(0, 256, size=(T, (self.d + 7) // 8), dtype=np.uint8),
                             axis=1, count=self.d)
        np.multiply(bits, 2, out=self.U, casting='unsafe')
        self.U -= 1
        W1, b1, W2, b2 = self.views(self.w)
        UW1, Ub1, UW2, Ub2 = self.views(self.U)
        x = self.x
        # layer 1: the clean product shared, the T perturbation products in one GEMM
        z0 = x @ W1.T + b1                                       # [B, hid]
        p = x @ UW1.reshape(T * hid, self.nin).T                 # [B, T*hid]
        H = np.empty((T + 1, B, hid), np.float32)
        H[0] = z0
        H[1:] = z0 + h * (p.reshape(B, T, hid).transpose(1, 0, 2) + Ub1[:, None, :])
        np.maximum(H, 0, out=H)
        # layer 2: T + 1 weight matrices, a stacked matmul
        W2s = np.empty((T + 1, self.C, hid), np.float32)
        W2s[0] = W2
        W2s[1:] = W2 + h * UW2
        b2s = np.empty((T + 1, self.C), np.float32)
        b2s[0] = b2
        b2s[1:] = b2 + h * Ub2
        out = np.matmul(H, W2s.transpose(0, 2, 1)) + b2s[:, None, :]   # [T+1, B, C]
        # mean cross-entropy of each model
        mx = out.max(axis=2, keepdims=True)
        lse = np.log(np.exp(out - mx).sum(axis=2)) + mx[:, :, 0]
        L = (lse - out[:, np.arange(B), self.y]).mean(axis=1, dtype=np.float64)
        s = ((L[1:] - L[0]) / h / T).astype(np.float32)
        g = s @ self.U                                           # [d]
        # Adam (torch's form, beta2 0.99)
        self.t += 1
        b1c, b2c = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        self.m *= self.b1
        self.m += (1 - self.b1) * g
        self.v *= self.b2
        np.multiply(g, g, out=g)
        self.v += (1 - self.b2) * g
        np.sqrt(self.v, out=self.tmp)
        self.tmp /= np.sqrt(b2c)
        self.tmp += self.eps
        np.divide(self.m, self.tmp, out=self.tmp)
        self.w -= (self.lr / b1c) * self.tmp
        return L[0]


def stub(name):
    """An inert module: any public name is an empty class (a package: submodules too)."""
    m = types.ModuleType(name)
    m.__path__ = []

    def attr(a):
        if a.startswith('__'):
            raise AttributeError(a)
        return type(a, (), {})
    m.__getattr__ = attr
    return m


def zeroth_learn_step(zl_dir, B, T):
    """Zeroth-Learn's own objects, one do_descent per call."""
    sys.dont_write_bytecode = True   # the checkout is read-only: no __pycache__ there
    sys.path.insert(0, zl_dir)
    for name in ('matplotlib', 'matplotlib.axes', 'matplotlib.pyplot', 'pandas', 'cycler'):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = stub(name)
    from zeroth.abstract import LayerConfig, NeuralNetworkConfig
    from zeroth.utils.perturbation_matrices import rademacher_matrix
    from zeroth.utils import activation_functions as af
    from zeroth import zeroth_order as zo
    from zeroth.losses import CrossEntropy
    np.random.seed(0)
    net = zo.ZerothOrderNeuralNetwork(NeuralNetworkConfig(name='XS', layers_config=[
        LayerConfig(input_dim=784, output_dim=128, f=af.relu),
        LayerConfig(input_dim=128, output_dim=10, f=af.softmax)]))
    est = zo.SimultaneousPerturbationConfig(dA=1e-8, nb_perturbations=T,
                                            get_perturbation_matrix=rademacher_matrix
                                            ).instantiate(net.params.nb_params)
    opt = zo.ZerothOrderAdamConfig(learning_rate=1e-3, beta1=0.9, beta2=0.99,
                                   epsilon=1e-8).instantiate(est)
    loss = CrossEntropy()
    X = np.random.random((784, B))                  # (input_dim, batch), float64
    Y = ((np.arange(B) * 7) % 10)[None, :]          # class indices, (1, batch)
    return lambda: opt.do_descent(net, loss, X, Y)


def main():
    a = parse()
    if a.zl:
        step = zeroth_learn_step(a.zl, a.batch, a.T)
    else:
        step = OurStep(a.batch, a.T, 784, a.hidden, 10).step
    for _ in range(3):
        step()
    xs = []
    for _ in range(a.samples):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        xs.append((time.perf_counter() - t0) / a.steps * 1e3)
    print('ms_per_step %.4f %s' % (float(np.median(xs)), ' '.join('%.4f' % x for x in xs)))


if __name__ == '__main__':
    main()
