"""Speed of `G.synthesis`: forward, and forward + backward w.r.t. ws (one embedding step's
generator part), for the official StyleGAN1 (FFHQ) and StyleGAN2 (config-f) architectures.

    python benchmarks/generator_speed.py                          # 256 and 1024 px, batch 1 and 4
    python benchmarks/generator_speed.py --resolutions 256 --threads 1
    python benchmarks/generator_speed.py --devices cuda --repeats 10

Weights do not change the speed, so the generators are `random:` sources (official
initialisation, nothing downloaded). The timed backward is `(img * R).sum().backward()` w.r.t. a
ws tensor that requires grad, with the weights frozen, as in Algorithm 1; noise_mode="const".

Side by side with NVIDIA's code (`--side-by-side`), in one process, interleaved step by step:

    python benchmarks/generator_speed.py --side-by-side                # the issue-13 network
    python benchmarks/generator_speed.py --side-by-side --threads 1 --clock cpu
    python benchmarks/generator_speed.py --side-by-side --network stylegan2-ada.pkl
    python benchmarks/generator_speed.py --side-by-side --device cuda --precision bf16 --compile

One step = synthesis forward, backward of sum(img * R) to ws, Adam on ws (each contender its
own ws and optimiser), float32; the median over `--steps` steps after `--warmup`. Contenders:
ours (`G.synthesis`, the default path), NVIDIA's synthesis re-stated op for op in
benchmarks/official_restatement.py on the same weights, as `G_ema` runs it (eval, fused
modulated conv) and as the training loop runs it (non-fused). The default network is an
official-format stylegan2-ada-pytorch generator: 64 px, channel_base 1024, channel_max 64,
num_fp16_res 4 (off: float32, the official force_fp32), conv_clamp 256, the official
initialisation with every bias and noise strength moved off its constant.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

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


def side_by_side_generator(args: argparse.Namespace, device: torch.device):
    """The network of the side-by-side run: `--network` or a seeded official-format one."""
    from image2stylegan.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    if args.network:
        return load_generator(args.network, device=device)
    config = StyleGAN2Config(
        img_resolution=args.resolution, channel_base=args.channel_base,
        channel_max=args.channel_max, num_fp16_res=args.num_fp16_res, conv_clamp=args.conv_clamp,
    )  # fmt: skip
    G = StyleGAN2Generator(config)
    gen = torch.Generator().manual_seed(0)
    G.reset_parameters(gen)
    with torch.no_grad():
        for name, t in G.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                t.add_(0.1 * torch.randn(t.shape, generator=gen))
    return G.eval().requires_grad_(False).to(device)


def side_by_side(args: argparse.Namespace) -> None:
    from official_restatement import OfficialSynthesis  # benchmarks/, next to this script

    device = torch.device(args.device)
    G = side_by_side_generator(args, device)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ws0 = G.mapping(torch.randn(args.batch, G.z_dim, generator=gen).to(device))
    R = torch.randn(args.batch, G.img_channels, G.img_resolution, G.img_resolution, generator=gen)
    R = R.to(device)
    ours = G.synthesis
    if args.compile:
        ours = torch.compile(G.synthesis, dynamic=False)
    synths: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "ours": lambda ws: ours(ws, noise_mode="const"),
        "official eval": OfficialSynthesis(G, fused_modconv=True),
        "official train": OfficialSynthesis(G, fused_modconv=False),
    }
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    def autocast() -> contextlib.AbstractContextManager:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def stepper(synth: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        ws = ws0.clone().requires_grad_(True)
        opt = torch.optim.Adam([ws], lr=0.01)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast():
                img = synth(ws)
            (img.float() * R).sum().backward()
            opt.step()

        return step

    with torch.no_grad(), autocast():
        images = {name: synth(ws0).float() for name, synth in synths.items()}
    steps = {name: stepper(synth) for name, synth in synths.items()}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for i in range(args.warmup + args.steps):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            _sync(device)
            t0 = clock()
            steps[name]()
            _sync(device)
            if i >= args.warmup:
                times[name].append(clock() - t0)
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    ref = images["official eval"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {device}, "
        f"{args.precision}, {args.clock} clock; {G.img_resolution} px, batch {args.batch}, "
        f"median of {args.steps} steps after {args.warmup}; "
        f"network: {args.network or 'official-format random'}"
    )
    print(f"{'step':>16} {'ms':>8} {'ours / it':>10} {'max |img - official eval|':>26}")
    for name in names:
        diff = (images[name] - ref).abs().max().item()
        print(f"{name:>16} {ms[name]:>8.1f} {ms['ours'] / ms[name]:>10.3f} {diff:>26.3g}")
    print(f"(image range {(ref.max() - ref.min()).item():.3g})")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for name in names:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.profile):
                    steps[name]()
            print(f"--- {name}: top ops over {args.profile} steps (self CPU time)")
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
            print(table)
    if args.markdown:
        print(
            f"| {device.type} {torch.get_num_threads()} threads | {args.precision} | "
            f"{G.img_resolution} | {args.batch} | {ms['ours']:.1f} | {ms['official eval']:.1f} | "
            f"{ms['official train']:.1f} | {ms['ours'] / ms['official eval']:.2f} | "
            f"{ms['ours'] / ms['official train']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default="stylegan1,stylegan2")
    parser.add_argument("--resolutions", default="256,1024")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--devices", default="auto", help="auto (cpu + cuda if present), cpu, cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sbs = parser.add_argument_group("side by side with NVIDIA's code (--side-by-side)")
    sbs.add_argument("--side-by-side", action="store_true", help="ours vs the official step")
    sbs.add_argument("--network", default=None, help="a generator file (default: random)")
    sbs.add_argument("--resolution", type=int, default=64)
    sbs.add_argument("--channel-base", type=int, default=1024)
    sbs.add_argument("--channel-max", type=int, default=64)
    sbs.add_argument("--num-fp16-res", type=int, default=4, help="recorded; runs in float32")
    sbs.add_argument("--conv-clamp", type=float, default=256.0)
    sbs.add_argument("--batch", type=int, default=4)
    sbs.add_argument("--steps", type=int, default=20, help="timed steps per contender")
    sbs.add_argument("--warmup", type=int, default=3)
    sbs.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                     help="wall: perf_counter; cpu: process CPU time (all threads)")  # fmt: skip
    sbs.add_argument("--device", default="cpu")
    sbs.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                     help="autocast dtype for every contender")  # fmt: skip
    sbs.add_argument("--compile", action="store_true", help="torch.compile our synthesis")
    sbs.add_argument("--markdown", action="store_true", help="also print a README table row")
    sbs.add_argument("--profile", type=int, default=0, metavar="STEPS",
                     help="then profile STEPS steps of each (torch.profiler top ops)")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.side_by_side:
        side_by_side(args)
        return
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
