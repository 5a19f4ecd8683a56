"""Time one training step (forward + backward + RMSprop) and one evaluation forward of a config, and project the
released schedule (130 x 3000 steps of batch 8) and an MPII validation pass from them.

    python scripts/time_train_step.py --config mca_paper --device cuda --batch 8 --amp bf16 --channels-last
    python scripts/time_train_step.py --config mca_paper --device cpu --batch 1 --steps 2 --threads 2

Random input; the first step is a warm-up and is not counted.  The projection is steps x the median step time
(data loading, validation and checkpoints not included).
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="mca_paper")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=8, help="micro-batch per step")
    p.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()

    import contextlib

    import torch

    import mca

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cfg = mca.get_config(args.config)
    model = mca.create_model(args.config).to(dev)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    x = (torch.rand(args.batch, 3, cfg.input_size, cfg.input_size, device=dev) - 0.5).contiguous(memory_format=fmt)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

    def cast():  # noqa: ANN202
        return torch.autocast(dev.type, dtype=amp) if amp else contextlib.nullcontext()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    model.train()
    for i in range(args.steps + 1):
        sync()
        t = time.perf_counter()
        with cast():
            outs = model(x)
        loss = sum((o.float() ** 2).mean() for o in outs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    model.eval()
    with torch.no_grad(), cast():
        model(x)
        sync()
        t = time.perf_counter()
        model(x)
        sync()
        fwd = (time.perf_counter() - t) / args.batch
    print(f"{args.config} on {dev} ({args.amp}, {'channels-last' if args.channels_last else 'NCHW'}): "
          f"train step of {args.batch}: {step:.3f} s (median of {len(times)}); eval forward {fwd * 1e3:.1f} ms/crop")
    samples = 130 * 3000 * 8
    print(f"projected: released schedule ({samples:,} crops) {samples / args.batch * step / 3600:.1f} h on this "
          f"device; MPII valid.h5 forwards {2 * 2958 * fwd / 60:.1f} min (released protocol), "
          f"{12 * 2958 * fwd / 60:.1f} min (paper pyramid)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
