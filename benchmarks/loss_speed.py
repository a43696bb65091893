"""Speed of the Eq. 1 loss: forward + backward w.r.t. the image, per batch size.

    python benchmarks/loss_speed.py                       # CPU (and CUDA when present), 256 px
    python benchmarks/loss_speed.py --resolution 1024     # G's 1024 px output, resized to 256
    python benchmarks/loss_speed.py --vgg vgg16-caffe     # real weights (same speed as random)

The target's features are cached (`set_target`), as in the embedding loop; each timed step is
`loss_fn(img)["total"].sum().backward()`. Weights do not change the speed, so the default is the
seeded random VGG-16 ("random") and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from image2stylegan.checkpoints.vgg_weights import load_vgg16
from image2stylegan.losses import Image2StyleGANLoss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loss(
    loss_fn: Image2StyleGANLoss,
    batch: int,
    resolution: int,
    device: torch.device,
    repeats: int,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Median seconds of one forward + backward for a batch of `batch` images."""
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1).to(device)
    img = (torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1).to(device)
    img.requires_grad_()
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        loss_fn.set_target(target)
    times = []
    for i in range(repeats + 1):  # the first run warms up (allocations, cuDNN autotuning)
        img.grad = None
        _sync(device)
        t0 = time.perf_counter()
        with ctx:
            total = loss_fn(img)["total"]
        total.sum().backward()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg", default="random", help="load_vgg16 source (default: random)")
    parser.add_argument("--resolution", type=int, default=256, help="image side in pixels")
    parser.add_argument("--perceptual-size", type=int, default=256)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"images {args.resolution} px, perceptual size {args.perceptual_size}, vgg {args.vgg}"
    )
    for device in devices:
        vgg = load_vgg16(args.vgg, device=device)
        loss_fn = Image2StyleGANLoss(vgg, perceptual_size=args.perceptual_size).to(device)
        modes: list[tuple[str, torch.dtype | None]] = [("float32", None)]
        if device.type == "cuda":
            modes.append(("autocast bf16", torch.bfloat16))
            name = torch.cuda.get_device_name(device)
        else:
            name = "CPU"
        for label, dtype in modes:
            for batch in batches:
                seconds = time_loss(loss_fn, batch, args.resolution, device, args.repeats, dtype)
                print(
                    f"{name:>24} {label:>14}  batch {batch:>3}: {seconds * 1e3:9.1f} ms/step "
                    f"({seconds * 1e3 / batch:7.1f} ms/image)"
                )


if __name__ == "__main__":
    main()
