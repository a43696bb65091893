"""results.csv and report.md: every measured number beside the paper's, with the exact command.

The report is written from an `ExperimentResult` only (numbers are computed by the experiment's
`analyse`; nothing here is typed from the paper except through `paper_numbers`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..embed import EmbedConfig
from ..fileio import atomic_write_text
from .paper_numbers import PAPER_SETTINGS, Printed
from .results import ExperimentResult, Table

__all__ = ["differences_from_paper", "format_value", "table_markdown", "write_csv", "write_report"]

MISSING = "—"
_ROW_OF_FIELD = {  # EmbedConfig field -> its row in the settings table
    "space": "latent space",
    "init": "init",
    "loss": "loss",
    "layers": "VGG layers",
    "layer_weights": "layer weights",
    "mse_weight": "lambda_mse",
    "perceptual_size": "perceptual size (px)",
    "noise": "noise",
    "seed": "seed",
}


def format_value(value: Any) -> str:
    """The paper's numbers as it prints them, ours to 4 significant digits (integers as they
    are), None/NaN as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, Printed):
        return value.text
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def table_markdown(table: Table) -> str:
    lines = [
        "| " + " | ".join(table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(format_value(v) for v in row) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """One row per dict; the columns are the union of keys in first-seen order."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    atomic_write_text(path, out.getvalue())
    return Path(path)


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, Printed):
        return v.text
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.9g}"
    return v


def differences_from_paper(
    config: EmbedConfig, metadata: dict[str, Any], varies: Sequence[str] = ()
) -> list[str]:
    """The settings of this run that differ from the paper's (PAPER_SETTINGS); `varies`: config
    fields the experiment sets per variant (not compared)."""
    ours = {
        "generator": metadata.get("generator"),
        "vgg": metadata.get("vgg"),
        "steps": config.steps,
        "lr": config.lr,
        "space": config.space,
        "loss": config.loss,
        "layers": tuple(config.layers),
        "perceptual_size": config.perceptual_size,
        "noise": config.noise,
    }
    out = []
    for key, paper in PAPER_SETTINGS.items():
        if key in varies:
            continue
        value = ours[key]
        if key == "generator" and str(value) == paper:
            continue
        if value != paper:
            out.append(f"{key} {_show(value)} (paper: {_show(paper)})")
    return out


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value is None:
        return "full"
    return str(value)


def write_report(
    path: Path,
    *,
    name: str,  # experiment name
    title: str,  # what it reproduces
    description: str,  # what it measures, a paragraph
    command: str,  # the exact command line
    config: EmbedConfig,  # base settings
    metadata: dict[str, Any],  # generator, vgg, device, ...
    run_settings: dict[str, Any],  # batch size, align, ...
    params: dict[str, Any],  # experiment parameters
    result: ExperimentResult,
    varies: Sequence[str] = (),  # config fields the experiment sets per variant
    elapsed_s: float | None = None,
    version: str = "",
) -> Path:
    """Write DIR/report.md."""
    out_dir = Path(path).parent
    w = []
    w.append(f"# `{name}`: {title}\n")
    w.append(description.strip() + "\n")
    w.append("## How this was run\n")
    w.append("```bash\n" + command + "\n```\n")
    w.append("| setting | this run | paper |\n|---|---|---|")
    paper = PAPER_SETTINGS
    rows: list[tuple[str, Any, Any]] = [
        ("generator", metadata.get("generator"), paper["generator"]),
        ("generator sha256", str(metadata.get("generator_sha256", ""))[:16], MISSING),
        ("VGG-16 weights", metadata.get("vgg"), paper["vgg"]),
        ("steps", config.steps, paper["steps"]),
        ("latent space", config.space, paper["space"]),
        ("init", config.init, "mean (faces), see Table 2"),
        ("Adam lr", config.lr, paper["lr"]),
        ("loss", config.loss, paper["loss"]),
        ("VGG layers", ",".join(config.layers), ",".join(paper["layers"])),
        (
            "layer weights",
            _show(config.layer_weights) if config.layer_weights else "all 1",
            "all 1",
        ),
        ("lambda_mse", config.mse_weight, 1.0),
        ("perceptual size (px)", _show(config.perceptual_size), paper["perceptual_size"]),
        ("noise", config.noise, paper["noise"]),
        ("seed", config.seed, MISSING),
        ("device", metadata.get("device", ""), "TITAN V100"),
    ]
    rows += [(k, v, MISSING) for k, v in run_settings.items()]
    varied_rows = {_ROW_OF_FIELD[f] for f in varies if f in _ROW_OF_FIELD}
    for key, ours, theirs in rows:
        if key in varied_rows:
            ours = "varied by the experiment (see Results)"
        w.append(f"| {key} | {format_value(ours)} | {format_value(theirs)} |")
    w.append("")
    if params:
        w.append(
            "Experiment parameters (`--param KEY=VALUE`): "
            + ", ".join(f"`{k}={_show(v)}`" for k, v in params.items())
            + ".\n"
        )
    diffs = differences_from_paper(config, metadata, varies)
    if diffs:
        w.append(
            "> **Not the paper's setting**, so the numbers are not expected to match: "
            + "; ".join(diffs)
            + ". The paper's numbers need the official FFHQ StyleGAN (`--generator ffhq-1024`), "
            "the original VGG-16 (`--vgg vgg16-caffe`), 5000 steps and the paper's image set "
            "(see docs/experiments.md).\n"
        )
    else:
        w.append("> The paper's setting (Sec. 5): the numbers are comparable with the paper's.\n")
    if elapsed_s is not None:
        w.append(f"Took {elapsed_s:.1f} s" + (f" (image2stylegan {version})." if version else "."))
        w.append("")

    w.append("## Results\n")
    for table in result.tables:
        w.append(f"### {table.title}\n")
        w.append(table_markdown(table) + "\n")
        for note in table.notes:
            w.append(f"- {note}")
        if table.notes:
            w.append("")
    if result.claims:
        w.append("## The paper's observations, checked\n")
        w.append("| | observation (paper) | measured here |\n|---|---|---|")
        for c in result.claims:
            mark = {True: "✓ holds", False: "✗ does not hold", None: "? undecided"}[c.holds]
            w.append(f"| {mark} | {c.paper} ({c.source}) | {c.measured} |")
        w.append("")
    if result.figures:
        w.append("## Figures\n")
        for fig in result.figures:
            rel = os.path.relpath(fig.path, out_dir)
            w.append(f"![{fig.caption}]({rel})\n\n*{fig.caption}*\n")
    if result.notes:
        w.append("## Notes\n")
        for note in result.notes:
            w.append(f"- {note}")
        w.append("")
    w.append("## Definitions\n")
    w.append(
        "- **L (x1e5)**: the final value of the embedding loss (Eq. 1: VGG-16 perceptual term "
        "+ lambda_mse * pixel MSE, each a mean over one image's scalars, images on the 0-255 "
        "scale) divided by 1e5, as the paper prints it; averaged over the images of a row."
    )
    w.append(
        "- **‖w* − w̄‖**: the Frobenius norm of w* − w̄ over the whole num_ws × w_dim code "
        "(18 × 512 for the paper's generator), w̄ (the generator's mean latent) broadcast to "
        "every layer; averaged over the images of a row."
    )
    w.append(
        "- Per-image values are in `results.csv`; embeddings (latent.npz, target.png, "
        "reconstruction.png, losses.csv) under `embeddings/<variant>/<image>/`.\n"
    )
    if result.failures:
        w.append("## Failures\n")
        for what, why in result.failures:
            w.append(f"- `{what}`: {why}")
        w.append("")
    atomic_write_text(path, "\n".join(w).rstrip() + "\n")
    return Path(path)
