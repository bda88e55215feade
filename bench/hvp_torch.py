"""PyTorch's Hessian-vector product beside its gradient, on the MLP of
examples/hvp_cost.rs (784-100-10, tanh, mean squared error, batch 64):
double backward (`create_graph=True`, then the gradient of g·v), the way
PyTorch users take one. Prints the best of N runs of each and the ratio,
in the format of hvp_cost.

    python3 bench/hvp_torch.py [--repeat N] [--threads T]
"""
import argparse
import time

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for dtype, name in [(torch.float64, "f64"), (torch.float32, "f32")]:
        gen = torch.Generator().manual_seed(0)

        def uniform(*shape, scale=1.0):
            return (torch.rand(*shape, generator=gen, dtype=dtype) * 2 - 1) * scale

        params = [uniform(784, 100, scale=0.05), uniform(100, scale=0.1),
                  uniform(100, 10, scale=0.1), uniform(10, scale=0.1)]
        params = [p.requires_grad_() for p in params]
        direction = [uniform(*p.shape) for p in params]
        x, y = uniform(64, 784), uniform(64, 10)

        def loss():
            w1, b1, w2, b2 = params
            h = torch.tanh(x @ w1 + b1)
            return ((h @ w2 + b2 - y) ** 2).mean()

        def gradient():
            return torch.autograd.grad(loss(), params)

        def hvp():
            grads = torch.autograd.grad(loss(), params, create_graph=True)
            dot = sum((g * v).sum() for g, v in zip(grads, direction))
            return torch.autograd.grad(dot, params)

        best = {"gradient": float("inf"), "hvp": float("inf")}
        for _ in range(args.repeat):
            for label, run in [("gradient", gradient), ("hvp", hvp)]:
                start = time.perf_counter()
                run()
                best[label] = min(best[label], time.perf_counter() - start)
        print(f"{'mlp 784-100-10, batch 64':<34} {name:<4} gradient {best['gradient'] * 1e3:9.3f} ms"
              f"   hvp {best['hvp'] * 1e3:9.3f} ms   ratio {best['hvp'] / best['gradient']:.2f}")


if __name__ == "__main__":
    main()
