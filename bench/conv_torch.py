#!/usr/bin/env python3
"""PyTorch's convolution and pooling layers at the shapes of the MNIST network
of the baseline (cnn_mnist_torch.py), timed as examples/conv_bench.rs times
ours: one layer at a time, batch 100, one thread, forward alone and forward
plus backward from a fixed output gradient, best of --repeat runs, in
milliseconds.

  conv1: 1 -> 10 channels, 5x5, on 28x28 (input is data: no input gradient)
  pool1: max-pool 2 on 10x24x24
  conv2: 10 -> 20 channels, 5x5, on 12x12
  pool2: max-pool 2 on 20x8x8

Prints one line per layer, `name forward forward+backward`, then the totals.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def best_ms(repeat, run):
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - start) * 1e3)
    return best


def time_layer(name, repeat, x, grad, op, leaves):
    def forward():
        op(x)

    def both():
        op(x).backward(grad)
        for leaf in leaves:
            leaf.grad = None

    f = best_ms(repeat, forward)
    b = best_ms(repeat, both)
    print(f"{name} {f:.4f} {b:.4f}", flush=True)
    return f, b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    batch = 100
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {batch}, "
          f"best of {args.repeat}, milliseconds: layer forward forward+backward")

    def param(*shape):
        return (torch.rand(*shape) * 2 - 1).requires_grad_()

    images = torch.rand(batch, 1, 28, 28) * 2 - 1
    w1, b1 = param(10, 1, 5, 5), param(10)
    maps1 = param(batch, 10, 24, 24)
    pooled1 = param(batch, 10, 12, 12)
    w2, b2 = param(20, 10, 5, 5), param(20)
    maps2 = param(batch, 20, 8, 8)
    layers = [
        time_layer("conv1", args.repeat, images, torch.rand(batch, 10, 24, 24),
                   lambda x: F.conv2d(x, w1, b1), [w1, b1]),
        time_layer("pool1", args.repeat, maps1, torch.rand(batch, 10, 12, 12),
                   lambda x: F.max_pool2d(x, 2), [maps1]),
        time_layer("conv2", args.repeat, pooled1, torch.rand(batch, 20, 8, 8),
                   lambda x: F.conv2d(x, w2, b2), [pooled1, w2, b2]),
        time_layer("pool2", args.repeat, maps2, torch.rand(batch, 20, 4, 4),
                   lambda x: F.max_pool2d(x, 2), [maps2]),
    ]
    print(f"total {sum(l[0] for l in layers):.4f} {sum(l[1] for l in layers):.4f}")


if __name__ == "__main__":
    main()
