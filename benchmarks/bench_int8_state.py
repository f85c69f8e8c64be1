"""AdamW with 8-bit state: fastopt's state_dtype="int8" against its float32
and bfloat16 state, torch's fused float32 AdamW, and the 8-bit AdamW of
bitsandbytes and torchao on the CPU where they install, in the same
interleaved rounds.

One float32 tensor of N elements (default 10^7), fastopt at its default
thread count, torch (and the libraries on it) at its own. Best and median
milliseconds per step; "vs torch fused" is torch's best time over each
one's. A library that fails to import or step is listed with its error.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_int8_state.py [--n N] [--rounds R]
"""
import argparse

import numpy as np

import fastopt
from fastopt.bench import rounds


def torch_steps(n, rng):
    """The torch-side contenders: name -> step function, or the error that stopped it."""
    import torch
    out = {}

    def make(name, build):
        try:
            p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(n).astype(np.float32)))
            p.grad = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
            opt = build([p])
            opt.step()
            out[name] = opt.step
        except Exception as e:  # not installed, or no CPU kernel
            out[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"

    make("torch fused AdamW (float32 state)", lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True))

    def bnb(ps):
        import bitsandbytes
        return bitsandbytes.optim.AdamW8bit(ps, lr=1e-3, min_8bit_size=0)

    def torchao(ps):
        from torchao.optim import AdamW8bit
        return AdamW8bit(ps, lr=1e-3)

    make("bitsandbytes AdamW8bit", bnb)
    make("torchao AdamW8bit", torchao)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    steps, failed = {}, {}
    for choice in (None, "bfloat16", "int8"):
        p = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        opt = fastopt.AdamW([p], lr=1e-3, state_dtype=choice)
        steps[f"fastopt AdamW ({choice or 'float32'} state)"] = lambda opt=opt, g=g: opt.step([g])
    try:
        for name, step in torch_steps(n, rng).items():
            (steps if callable(step) else failed)[name] = step
    except ImportError as e:
        failed["torch"] = str(e)
    times = rounds(steps, args.rounds)
    ref = times.get("torch fused AdamW (float32 state)")
    print(f"AdamW, {n:.0e} float32 parameters, {fastopt.get_num_threads()} fastopt threads, "
          f"isa {fastopt._core.active_isa()}, {args.rounds} rounds")
    print("| step | ms best / median | vs torch fused |")
    print("|---|---|---|")
    for name, ts in times.items():
        versus = f"{min(ref) / min(ts):.2f}x" if ref else ""
        print(f"| {name} | {1e3 * min(ts):.2f} / {1e3 * float(np.median(ts)):.2f} | {versus} |")
    for name, why in failed.items():
        print(f"| {name} | did not run: {why} | |")


if __name__ == "__main__":
    main()
