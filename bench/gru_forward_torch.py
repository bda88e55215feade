"""The GRU of examples/gru_forward.rs (hidden 128, embedding rows of a
65-token vocabulary, the same gate formulas) run forward only under
`torch.no_grad()`, one step at a time, on one thread: time per step for each
length, in the example's format.

    python3 bench/gru_forward_torch.py [--steps 1000,10000,100000] [--hidden 128]
"""
import argparse
import time

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="1000,10000,100000")
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    hidden, vocab = args.hidden, 65
    gen = torch.Generator().manual_seed(7)

    def matrix(rows, cols):
        scale = 1.0 / rows ** 0.5
        return (torch.rand(rows, cols, generator=gen) * 2 - 1) * scale

    embedding = matrix(vocab, hidden)
    wz, uz, wr, ur, wh, uh = (matrix(hidden, hidden) for _ in range(6))
    lengths = [int(n) for n in args.steps.split(",")]
    tokens = torch.randint(0, vocab, (max(lengths),), generator=gen).tolist()
    print(f"# torch GRU, hidden {hidden}, forward only (no_grad); one line per length")
    with torch.no_grad():
        for steps in lengths:
            h = torch.zeros(1, hidden)
            start = time.perf_counter()
            for token in tokens[:steps]:
                x = embedding[token:token + 1]
                z = torch.sigmoid(x @ wz + h @ uz)
                r = torch.sigmoid(x @ wr + h @ ur)
                candidate = torch.tanh(x @ wh + (r * h) @ uh)
                h = z * h + (1 - z) * candidate
            elapsed = time.perf_counter() - start
            print(f"steps {steps:>7}   {elapsed / steps * 1e9:8.0f} ns/step   (output {h.sum().item():.4f})")


if __name__ == "__main__":
    main()
