"""W+ vs W+ & noise vs pivotal tuning: reconstruction quality, time and locality on real photos.

    python benchmarks/pti_table.py                                   # the defaults below, offline
    python benchmarks/pti_table.py --generator ffhq-1024-ada --vgg vgg16-caffe \\
        --perceptual-size 256 --steps 5000 --noise-steps 3000 --pti-steps 350 --images a.jpg b.jpg

Each image is embedded three ways through `image2stylegan embed` (run in this process):

  (a) W+      Algorithm 1 alone (--steps),
  (b) noise   (a)'s latent, then the Image2StyleGAN++ noise stage (--noise-steps, W+ frozen),
  (c) PTI     (a)'s latent as the pivot, then pivotal tuning (--pti-steps, locality 0.1).

(b) and (c) start from (a)'s latent file (`--init LATENT --steps 0`), so all three share the
same W+ code and the W+ time is spent once; their time per image is (a)'s time plus their stage's.
The W+ run is also (c)'s pivot: (c)'s `latent_psnr` (before tuning) equals (a)'s PSNR.

Locality: the tuned generator should still draw what the original drew away from the pivot.
For K random codes w = f(z), z ~ N(0, I) (no truncation; far from the pivot), the table gives the
PSNR between the original generator's and the tuned one's 8-bit renders (stored noise), for the
PTI run and for a second tuning with --pti-locality 0 (no regulariser), and the PSNR between
the two generators' renders of the pivot itself (low: that is where the tuning changed it).

Writes OUT/table.md (also printed, and to --markdown), OUT/results.json, OUT/grid.png (rows =
images; columns = target, W+, W+ & noise, PTI) and the runs OUT/{wplus,noise,pti,pti_nolocality}/.
The default generator is a 32 px stylegan2-ada-pytorch snapshot with random weights from the test
fixtures and VGG-16 is random, so nothing is downloaded: the numbers compare the methods on this
tiny network, not on FFHQ.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMAGE2STYLEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_GENERATOR = REPO / "tests" / "data" / "official" / "ada_fp32_p3_32.pkl"
DEFAULT_IMAGES = ("face_01.jpg", "face_04.jpg", "painting_02.jpg", "cat_01.jpg", "car_02.jpg")
METHODS = ("W+", "W+ & noise", "PTI")
COLUMNS = ("target", *METHODS)  # of the grid
PAD = 4  # grid spacing, px
HEADER = 14  # grid label row, px


@dataclass
class Record:
    """One image's result of one method."""

    psnr: float
    ssim: float
    seconds: float  # per image: W+ steps plus this method's stage
    image: Path  # its reconstruction.png
    lpips: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def grid_size(rows: int, cell: int) -> tuple[int, int]:
    """(width, height) of the grid PNG for `rows` images at `cell` px per picture."""
    cols = len(COLUMNS)
    return cols * cell + (cols + 1) * PAD, HEADER + rows * (cell + PAD) + PAD


def run_embed(args: list[str]) -> list[dict]:
    """`image2stylegan embed ARGS --json -q` in this process -> its outputs (all must be done)."""
    from image2stylegan.cli.main import main

    out = io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out):
        try:
            main(["embed", *args, "--json", "-q"])
        except SystemExit as e:
            code = e.code
    if code not in (0, None):
        raise SystemExit(f"pti_table: `image2stylegan embed {shlex.join(args)}` failed ({code})")
    outputs = json.loads(out.getvalue())["outputs"]
    failed = [o for o in outputs if o["status"] not in ("done", "skipped")]
    if failed:
        raise SystemExit(f"pti_table: {failed[0]['source']}: {failed[0]['error']}")
    return outputs


def read_latent(folder: Path) -> dict:
    from image2stylegan import load_latent

    return dict(load_latent(folder / "latent.npz").metadata)


def record(folder: Path, seconds: float) -> Record:
    m = read_latent(folder)["metrics"]
    lpips = m.get("lpips")
    return Record(
        psnr=float(m["psnr"]),
        ssim=float(m["ssim"]),
        seconds=seconds,
        image=folder / "reconstruction.png",
        lpips=None if lpips is None else float(lpips),
        extra={k: float(v) for k, v in m.items() if k.startswith("latent_")},
    )


def stage_seconds(csv_path: Path) -> float:
    """The last elapsed_s of a losses.csv / pti_losses.csv (the stage's own clock)."""
    last = csv_path.read_text().strip().splitlines()[-1].split(",")
    return float(last[-1])


@torch.no_grad()
def locality(
    G: torch.nn.Module, tuned_file: Path, pivot: torch.Tensor, codes: torch.Tensor
) -> dict[str, float]:
    """PSNR between G's and the tuned generator's renders of `codes` and of the pivot."""
    from image2stylegan import load_generator
    from image2stylegan.metrics import psnr

    T = load_generator(tuned_file)
    far = [
        psnr(G.synthesis(w[None], noise_mode="const"), T.synthesis(w[None], noise_mode="const"))
        for w in codes
    ]
    at_pivot = psnr(G.synthesis(pivot, noise_mode="const"), T.synthesis(pivot, noise_mode="const"))
    return {"far_mean": sum(far) / len(far), "far_min": min(far), "pivot": at_pivot}


def make_grid(rows: list[list[Path]], labels: list[str], cell: int, path: Path) -> None:
    width, height = grid_size(len(rows), cell)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    for j, name in enumerate(COLUMNS):
        draw.text((PAD + j * (cell + PAD), 1), name, fill="black")
    for i, files in enumerate(rows):
        y = HEADER + i * (cell + PAD)
        for j, file in enumerate(files):
            with Image.open(file) as im:
                pic = im.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST)
            grid.paste(pic, (PAD + j * (cell + PAD), y))
        draw.text((PAD + 2, y + 1), labels[i], fill="white")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def markdown(results: dict[str, dict[str, Record]], loc: dict, args, command: str) -> str:
    names = list(results)
    with_lpips = all(r.lpips is not None for per in results.values() for r in per.values())
    steps = {
        "W+": f"{args.steps} W+ steps",
        "W+ & noise": f"+ {args.noise_steps} noise steps",
        "PTI": f"+ {args.pti_steps} PTI steps",
    }
    lines = [f"`{command}`", ""]
    head = (
        "| method | steps | PSNR dB | SSIM |" + (" LPIPS |" if with_lpips else "") + " s / image |"
    )
    lines += [head, "|---" * (head.count("|") - 1) + "|"]
    for method in METHODS:
        rs = [results[n][method] for n in names]
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        cells = [
            method,
            steps[method],
            fmt(mean([r.psnr for r in rs])),
            fmt(mean([r.ssim for r in rs]), 3),
        ]
        if with_lpips:
            cells.append(fmt(mean([r.lpips or 0.0 for r in rs]), 3))
        cells.append(fmt(mean([r.seconds for r in rs]), 1))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Mean over {len(names)} images. Per image (PSNR dB / SSIM"
        + (" / LPIPS" if with_lpips else "")
        + "):",
        "",
    ]
    lines += ["| image | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for n in names:
        cells = []
        for method in METHODS:
            r = results[n][method]
            cell = f"{fmt(r.psnr)} / {fmt(r.ssim, 3)}"
            if with_lpips:
                cell += f" / {fmt(r.lpips, 3)}"
            cells.append(cell)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Locality: PSNR dB between the original and the tuned generator's renders of "
        f"{args.locality_codes} random codes w = f(z), z ~ N(0, I) (mean, min), and of the "
        "pivot; and the tuned render's PSNR to the target (higher = closer):",
        "",
    ]
    lines += [
        "| image | λ_R | far codes mean | far codes min | pivot | tuned vs target |",
        "|---" * 6 + "|",
    ]
    for n in names:
        for label, key in ((f"{args.pti_locality:g}", "pti"), ("0", "pti_nolocality")):
            v = loc[n][key]
            lines.append(
                f"| {n} | {label} | {fmt(v['far_mean'])} | {fmt(v['far_min'])} | "
                f"{fmt(v['pivot'])} | {fmt(v['target'])} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images",
        nargs="+",
        type=Path,
        help=f"photos [{', '.join(DEFAULT_IMAGES)} of {SHARED / 'images'}]",
    )
    parser.add_argument(
        "--generator",
        default=str(DEFAULT_GENERATOR),
        help="any --generator of `image2stylegan embed` [the 32 px fixture]",
    )
    parser.add_argument("--vgg", default="random", help="embed --vgg [random]")
    parser.add_argument("--perceptual-size", default="full", help="embed --perceptual-size [full]")
    parser.add_argument("--steps", type=int, default=500, help="W+ steps [500]")
    parser.add_argument("--noise-steps", type=int, default=300, help="noise-stage steps [300]")
    parser.add_argument("--pti-steps", type=int, default=350, help="pivotal-tuning steps [350]")
    parser.add_argument("--pti-lr", type=float, default=3e-4, help="embed --pti-lr [3e-4]")
    parser.add_argument("--pti-loss", default="auto", help="embed --pti-loss [auto]")
    parser.add_argument(
        "--pti-locality",
        type=float,
        default=0.1,
        help="embed --pti-locality of the PTI run [0.1]; the contrast run has 0",
    )
    parser.add_argument(
        "--locality-codes", type=int, default=8, help="random codes of the locality measurement [8]"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell", type=int, default=96, help="px per picture in the grid [96]")
    parser.add_argument("--out", type=Path, default=Path("pti_table"), help="output folder")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads [torch's default]; 1 on a busy shared machine",
    )
    args = parser.parse_args()
    for name in ("steps", "noise_steps", "pti_steps", "locality_codes", "cell"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    images = args.images or [SHARED / "images" / n for n in DEFAULT_IMAGES]
    for img in images:
        if not img.is_file():
            parser.error(f"{img}: no such image")
    command = "python benchmarks/pti_table.py " + shlex.join(sys.argv[1:])
    base = [
        "-g",
        args.generator,
        "--vgg",
        args.vgg,
        "--perceptual-size",
        args.perceptual_size,
        "--seed",
        str(args.seed),
        "--device",
        args.device,
    ]
    out: Path = args.out
    t0 = time.perf_counter()

    wplus = run_embed(
        [*map(str, images), *base, "--steps", str(args.steps), "--out", str(out / "wplus")]
    )
    results: dict[str, dict[str, Record]] = {}
    targets: dict[str, Path] = {}
    folders: dict[str, dict[str, Path]] = {}
    for img, o in zip(images, wplus, strict=True):
        folder = Path(o["out_dir"])
        name = folder.name
        w_seconds = stage_seconds(folder / "losses.csv")
        latent = str(folder / "latent.npz")
        start = [str(img), *base, "--steps", "0", "--init", latent]
        pti = [
            "--pti-steps",
            str(args.pti_steps),
            "--pti-lr",
            str(args.pti_lr),
            "--pti-loss",
            args.pti_loss,
        ]
        runs = {
            "noise": ["--noise-steps", str(args.noise_steps)],
            "pti": [*pti, "--pti-locality", str(args.pti_locality)],
            "pti_nolocality": [*pti, "--pti-locality", "0"],
        }
        folders[name] = {"wplus": folder}
        for key, extra in runs.items():
            (o2,) = run_embed([*start, *extra, "--out", str(out / key)])
            folders[name][key] = Path(o2["out_dir"])
        noise_dir, pti_dir = folders[name]["noise"], folders[name]["pti"]
        results[name] = {
            "W+": record(folder, w_seconds),
            "W+ & noise": record(noise_dir, w_seconds + stage_seconds(noise_dir / "losses.csv")),
            "PTI": record(pti_dir, w_seconds + stage_seconds(pti_dir / "pti_losses.csv")),
        }
        targets[name] = folder / "target.png"
        print(
            f"{name}: " + ", ".join(f"{m} {r.psnr:.2f} dB" for m, r in results[name].items()),
            file=sys.stderr,
            flush=True,
        )

    from image2stylegan import load_generator, load_latent

    G = load_generator(args.generator)
    z = torch.randn(args.locality_codes, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        codes = G.mapping(z)  # [K, num_ws, w_dim], truncation 1
    loc: dict[str, dict[str, dict[str, float]]] = {}
    for name, f in folders.items():
        pivot = load_latent(f["pti"] / "latent.npz").w.float()
        distance = float((codes - pivot).flatten(1).norm(dim=1).mean())
        loc[name] = {
            key: locality(G, f[key] / "generator.safetensors", pivot, codes)
            | {"distance": distance, "target": record(f[key], 0.0).psnr}
            for key in ("pti", "pti_nolocality")
        }

    table = markdown(results, loc, args, command)
    mean_dist = sum(v["pti"]["distance"] for v in loc.values()) / len(loc)
    table += (
        f"\nMean distance ||w - w_p|| of those codes from the pivot: {mean_dist:.1f} "
        f"(the regulariser's codes are at α = 30). Total time "
        f"{time.perf_counter() - t0:.0f} s, torch threads: {torch.get_num_threads()}.\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    if args.markdown:
        args.markdown.write_text(table)
    summary = {
        "command": command,
        "methods": {
            n: {
                m: {
                    "psnr": r.psnr,
                    "ssim": r.ssim,
                    "lpips": r.lpips,
                    "seconds": r.seconds,
                    **r.extra,
                }
                for m, r in per.items()
            }
            for n, per in results.items()
        },
        "locality": loc,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = [[targets[n], *(results[n][m].image for m in METHODS)] for n in results]
    make_grid(rows, list(results), args.cell, out / "grid.png")
    print(table)


if __name__ == "__main__":
    main()
