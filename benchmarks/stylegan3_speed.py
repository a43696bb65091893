"""Speed of the StyleGAN3 synthesis network: forward, and forward + backward w.r.t. ws (the
generator part of one embedding step), configs T and R.

    python benchmarks/stylegan3_speed.py                            # T and R at 256 px, batch 1
    python benchmarks/stylegan3_speed.py --resolutions 256,1024 --batches 1,4 --threads 2
    python benchmarks/stylegan3_speed.py --devices cuda --fp16      # the official float16 layers
    python benchmarks/stylegan3_speed.py --modconv fused,scaled     # both modulation paths

Generators are `random:stylegan3-{t,r}-RES` (the networks NVlabs/stylegan3's train.py builds;
weights do not change the speed). The timed backward is `(img * R).sum().backward()` w.r.t. a ws
tensor that requires grad, weights frozen, as in Algorithm 1. `--modconv fused` is NVIDIA's
grouped convolution with per-sample weights, `scaled` (our default) scales the activations
around one shared convolution. Comparing with NVIDIA's own code needs their repository and runs
outside this one (README: StyleGAN3).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from image2stylegan.checkpoints import load_generator
from image2stylegan.models.stylegan3 import StyleGAN3Generator


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_synthesis(
    G: StyleGAN3Generator, batch: int, device: torch.device, repeats: int, backward: bool
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
            (G.synthesis(w) * R).sum().backward()
        else:
            with torch.no_grad():
                G.synthesis(w)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="t,r", help="t, r or both")
    parser.add_argument("--resolutions", default="256")
    parser.add_argument("--batches", default="1")
    parser.add_argument("--devices", default="auto", help="auto (cpu + cuda if present), cpu, cuda")
    parser.add_argument("--modconv", default="scaled", help="scaled, fused or both (comma list)")
    parser.add_argument("--fp16", action="store_true", help="float16 in the official fp16 layers")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    precision = "fp16 layers" if args.fp16 else "float32"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {precision}")
    print(
        f"{'device':>24} {'generator':>16} {'modconv':>7} {'batch':>5} {'forward ms':>11} "
        f"{'ms/img':>9} {'fwd+bwd ms':>11} {'ms/img':>9}"
    )
    for name in devices:
        device = torch.device(name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        for cfg in args.configs.split(","):
            for res in (int(r) for r in args.resolutions.split(",")):
                G = load_generator(f"random:stylegan3-{cfg}-{res}", device=device)
                assert isinstance(G, StyleGAN3Generator)
                G.fp16 = args.fp16
                for modconv in args.modconv.split(","):
                    G.fused_modconv = modconv == "fused"
                    for batch in (int(b) for b in args.batches.split(",")):
                        fwd = time_synthesis(G, batch, device, args.repeats, backward=False)
                        both = time_synthesis(G, batch, device, args.repeats, backward=True)
                        print(
                            f"{label:>24} {f'SG3-{cfg.upper()} {res} px':>16} {modconv:>7} "
                            f"{batch:>5} {fwd * 1e3:>11.1f} {fwd * 1e3 / batch:>9.1f} "
                            f"{both * 1e3:>11.1f} {both * 1e3 / batch:>9.1f}",
                            flush=True,
                        )
                del G
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
