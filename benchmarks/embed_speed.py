"""Speed of Algorithm 1's step loop: steps/s and image-steps/s per resolution and batch size.

    python benchmarks/embed_speed.py                                  # CPU (+ CUDA if present)
    python benchmarks/embed_speed.py --device cuda --precision bf16 --compile
    python benchmarks/embed_speed.py --resolutions 64,256 --batch-sizes 1,4 --arch stylegan2

Generators are the official configurations (StyleGAN1 = the FFHQ network, StyleGAN2 = config-f)
at each resolution with random weights; the loss is the paper's Eq. 1 (VGG-16 conv1_1, conv1_2,
conv3_2, conv4_2 at 256 px + MSE) on seeded random VGG weights — weights do not change the
speed, so nothing is downloaded. Each case runs `--warmup` steps, then times `--steps` steps of
`Embedder.iterate` (one report at the end: no host sync inside the timed loop). Cases whose
first step takes longer than `--max-step-seconds` are skipped (1024 px x 16 on a laptop CPU).
"""

from __future__ import annotations

import argparse
import time

import torch

from image2stylegan.checkpoints.vgg_weights import load_vgg16
from image2stylegan.embed import EmbedConfig, build_embedder
from image2stylegan.models.stylegan1 import StyleGAN1Config, StyleGAN1Generator
from image2stylegan.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def make_generator(arch: str, resolution: int, device: torch.device):
    if arch == "stylegan1":
        G = StyleGAN1Generator(StyleGAN1Config(resolution=resolution))
    else:
        G = StyleGAN2Generator(StyleGAN2Config(img_resolution=resolution))
    return G.eval().requires_grad_(False).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(G, vgg, batch: int, args, device: torch.device) -> float | None:
    """Seconds per step for `batch` images, or None when one step exceeds the limit."""
    config = EmbedConfig(
        steps=args.warmup + args.steps, precision=args.precision, compile=args.compile
    )
    emb = build_embedder(G, config, vgg=vgg)
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(batch, 3, G.img_resolution, G.img_resolution, generator=g) * 2 - 1
    _sync(device)
    t0 = time.perf_counter()
    it = emb.iterate(targets, report_every=1, stop_after=1)
    for _ in it:
        pass
    _sync(device)
    if time.perf_counter() - t0 > args.max_step_seconds:
        return None
    state = None
    for report in emb.iterate(targets, report_every=args.warmup, stop_after=args.warmup):
        state = report.state()
    _sync(device)
    t0 = time.perf_counter()
    for _ in emb.iterate(targets, state=state, report_every=args.steps):
        pass  # one report, at the end
    _sync(device)
    return (time.perf_counter() - t0) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--arch", default="stylegan1", choices=["stylegan1", "stylegan2"])
    parser.add_argument("--resolutions", default="64,256,1024")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--max-step-seconds", type=float, default=60.0)
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [args.device]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, arch {args.arch}, "
        f"precision {args.precision}, compile {args.compile}"
    )
    print(f"{'device':8} {'res':>5} {'batch':>5} {'s/step':>9} {'steps/s':>9} {'img-steps/s':>12}")
    for name in devices:
        device = torch.device(name)
        vgg = load_vgg16("random", device=device)
        for res in (int(r) for r in args.resolutions.split(",")):
            G = make_generator(args.arch, res, device)
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                sec = time_case(G, vgg, batch, args, device)
                if sec is None:
                    print(f"{name:8} {res:>5} {batch:>5} {'skipped (one step > limit)':>32}")
                    continue
                rates = f"{sec:>9.3f} {1 / sec:>9.2f} {batch / sec:>12.2f}"
                print(f"{name:8} {res:>5} {batch:>5} {rates}", flush=True)


if __name__ == "__main__":
    main()
