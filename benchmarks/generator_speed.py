"""Speed of `G.synthesis`: forward, and forward + backward w.r.t. ws (one embedding step's
generator part), for the official StyleGAN1 (FFHQ) and StyleGAN2 (config-f) architectures.

    python benchmarks/generator_speed.py                          # 256 and 1024 px, batch 1 and 4
    python benchmarks/generator_speed.py --resolutions 256 --threads 1
    python benchmarks/generator_speed.py --devices cuda --repeats 10

Weights do not change the speed, so the generators are `random:` sources (official
initialisation, nothing downloaded). The timed backward is `(img * R).sum().backward()` w.r.t. a
ws tensor that requires grad, with the weights frozen, as in Algorithm 1; noise_mode="const".
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from image2stylegan.checkpoints import load_generator
from image2stylegan.models.base import Generator


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_synthesis(
    G: Generator, batch: int, device: torch.device, repeats: int, backward: bool
) -> float:
    """Median seconds of one `G.synthesis` call (plus the backward pass to ws if `backward`)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ws = G.mapping(torch.randn(batch, G.z_dim, generator=gen).to(device))  # [N, num_ws, w_dim]
    R = torch.randn(batch, G.img_channels, G.img_resolution, G.img_resolution, generator=gen)
    R = R.to(device)
    times = []
    for i in range(repeats + 1):  # the first run warms up (allocations, cuDNN autotuning)
        w = ws.detach().clone().requires_grad_(backward)
        _sync(device)
        t0 = time.perf_counter()
        if backward:
            img = G.synthesis(w, noise_mode="const")
            (img * R).sum().backward()
        else:
            with torch.no_grad():
                G.synthesis(w, noise_mode="const")
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default="stylegan1,stylegan2")
    parser.add_argument("--resolutions", default="256,1024")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--devices", default="auto", help="auto (cpu + cuda if present), cpu, cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32")
    print(
        f"{'device':>24} {'generator':>18} {'batch':>5} {'forward ms':>11} {'ms/img':>9} "
        f"{'fwd+bwd ms':>11} {'ms/img':>9}"
    )
    for name in devices:
        device = torch.device(name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        for arch in args.architectures.split(","):
            for res in (int(r) for r in args.resolutions.split(",")):
                G = load_generator(f"random:{arch}-{res}", device=device)
                for batch in (int(b) for b in args.batches.split(",")):
                    fwd = time_synthesis(G, batch, device, args.repeats, backward=False)
                    both = time_synthesis(G, batch, device, args.repeats, backward=True)
                    print(
                        f"{label:>24} {f'{arch} {res} px':>18} {batch:>5} "
                        f"{fwd * 1e3:>11.1f} {fwd * 1e3 / batch:>9.1f} "
                        f"{both * 1e3:>11.1f} {both * 1e3 / batch:>9.1f}",
                        flush=True,
                    )
                del G
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
