"""The paper's experiments (SPEC section 6), one module per table / figure.

Each module has a frozen `Params` dataclass (the experiment's own knobs, paper values as
defaults), `run(ctx, items, params) -> ExperimentResult` (embeds through the context, draws the
figures) and `analyse(...)`, the pure function that turns measurements into the tables and the
checks of the paper's observations. `image2stylegan experiment NAME` runs one and writes
`results.csv`, the figures and `report.md`.

    from image2stylegan.experiments import EXPERIMENTS, load_experiment
    module = load_experiment("affine")
    result = module.run(ctx, items, module.Params())

The stage after embedding and editing (... -> embed -> edit -> experiments -> web / cli). What
the experiments share, one job per module: items.py (image sets and the paper's categories),
context.py (`ExperimentContext`: preparing inputs and embedding every variant through the one
embed pipeline), results.py (embeddings read back, tables, claims, figures), measures.py (the
paper's measurements and aggregations), params.py (`--param KEY=VALUE`), figures.py,
report.py (results.csv, report.md) and paper_numbers.py (the paper's numbers, as printed).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

__all__ = ["EXPERIMENTS", "ExperimentSpec", "load_experiment"]


@dataclass(frozen=True)
class ExperimentSpec:
    """What `image2stylegan experiment --list` shows about an experiment."""

    name: str  # the CLI name
    module: str  # submodule of image2stylegan.experiments
    reproduces: str  # the paper's table / figure
    summary: str  # one line


EXPERIMENTS: dict[str, ExperimentSpec] = {
    spec.name: spec
    for spec in (
        ExperimentSpec(
            "affine",
            "affine",
            "Table 1, Fig. 2",
            "translated (right 140 / left 160 px), zoomed (2x out / in) and rotated (90°, 180°) "
            "faces: loss and ||w*-w̄||",
        ),
        ExperimentSpec(
            "init",
            "init",
            "Table 2, Figs. 5, 13",
            "w̄ vs U[-1,1] initialisation per category: loss and ||w*-w̄||",
        ),
        ExperimentSpec(
            "defects",
            "defects",
            "Table 3, Fig. 3",
            "faces with eyes / nose / mouth replaced by another face's (landmark regions)",
        ),
        ExperimentSpec(
            "space",
            "space",
            "Figs. 5, 14",
            "W vs W+ embedding, each from w̄ and from a random code",
        ),
        ExperimentSpec(
            "random-generator",
            "random_generator",
            "Figs. 5 (b)(e), 14",
            "embedding into the same architecture with random weights, in W and W+",
        ),
        ExperimentSpec(
            "loss-ablation",
            "loss_ablation",
            "Figs. 9, 22",
            "MSE only (full res, resized), conv3_2 only, MSE + conv3_2, perceptual only, Eq. 1",
        ),
        ExperimentSpec(
            "convergence",
            "convergence",
            "Fig. 10",
            "loss vs step per category (log plot); convergence steps vs the paper's",
        ),
        ExperimentSpec(
            "iterative",
            "iterative",
            "Fig. 11",
            "embed, regenerate, re-embed (7 times): loss per round",
        ),
        ExperimentSpec(
            "perceptual-size",
            "perceptual_size",
            "Fig. 12",
            "perceptual loss on 256 px resized images vs at full resolution",
        ),
        ExperimentSpec(
            "noise",
            "noise",
            "Fig. 16",
            "restarts with different constant noise vs resampling the noise every step",
        ),
        ExperimentSpec(
            "distances",
            "distances",
            "Fig. 20",
            "pairwise L2 distances of the embedded codes, heat map grouped by category",
        ),
        ExperimentSpec(
            "noise-space",
            "noise_space",
            "Image2StyleGAN++ Sec. 4.2, 7.1, Fig. 4",
            "W+ only vs W+ then the noise maps (sequential), jointly, and noise only: PSNR, "
            "SSIM, LPIPS, and what the W+ code alone draws",
        ),
        ExperimentSpec(
            "random-walk",
            "random_walk",
            "supplementary videos",
            "random walk from each embedded code to the mean face: frames + video",
        ),
    )
}


def load_experiment(name: str) -> ModuleType:
    """The module of experiment `name` (with `Params`, `run`, `analyse`, `TITLE`, `DESCRIPTION`)."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f".{EXPERIMENTS[name].module}", __name__)
