"""The random walk of the supplementary videos: from an embedded image towards the mean face.

Every image is embedded; its code w* walks to w̄ in `frames` steps (`edit.walk.random_walk`: the
straight path plus a Brownian-bridge excursion of size `perturbation`, seeded by `--seed`, so
the first frame is w* and the last w̄ exactly). The frames are rendered with the stored noise and
written as a video per image plus a strip figure. The paper shows these walks (faces and cars)
only as videos, so there are no numbers to compare; the CSV traces each frame's distance to w̄
and its pixel MSE to the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image

from ..edit.walk import random_walk
from ..image import tensor_to_uint8
from ..video import open_frame_writer, strip_indices
from .context import ExperimentContext
from .figures import image_grid_figure
from .items import ImageItem
from .measures import load_frames, mean, w_distance
from .results import ExperimentResult, Figure, Table

__all__ = ["DESCRIPTION", "TITLE", "VARIES", "Params", "run"]

VARIES: tuple[str, ...] = ()  # EmbedConfig fields set by the variants
TITLE = "Random walk towards the mean face (supplementary videos)"
DESCRIPTION = """
What lies between an embedded image and the mean face (supplement, "random walk ... from the
embedded image towards the mean face image")? Each embedded code walks to w̄; the frames are
written as a video and a strip per image.
"""


@dataclass(frozen=True)
class Params:
    frames: int = 60  # frames per walk, both ends included
    perturbation: float = 0.3  # σ of the random excursion per element in W units (0: straight)
    end: float = 1.0  # how far towards w̄ (1 = all the way)
    per_layer: bool = False  # an independent excursion per layer
    fps: float = 30.0
    video: Literal["mp4", "gif"] = "mp4"
    strip_frames: int = 8  # frames shown per image in the figure

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if self.perturbation < 0:
            raise ValueError("perturbation must be >= 0")


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    embeddings = ctx.embed([("main", it) for it in originals], label="random-walk")
    result = ExperimentResult()
    result.add_failures(embeddings)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    w_avg = ctx.G.w_avg.detach().cpu().float()
    rows, labels, shown = [], [], strip_indices(params.frames, params.strip_frames)
    table = Table(
        "Distance to w̄ and pixel MSE to the input along the walk (means over images)",
        ["frame", "t", "‖w − w̄‖", "MSE to input (0-255)"],
    )
    per_frame: dict[int, list[tuple[float, float]]] = {}
    for k, e in enumerate([e for e in embeddings if e.ok]):
        gen = torch.Generator().manual_seed(ctx.config.seed + k)
        ws = random_walk(
            e.ws.float(),
            w_avg,
            params.frames,
            perturbation=params.perturbation,
            end=params.end,
            per_layer=params.per_layer,
            generator=gen,
        )  # [K, num_ws, w_dim]
        target = load_frames([e.out_dir / "target.png"])  # [1, 3, H, W]
        path = ctx.out / "walk" / f"{e.name}.{params.video}"
        strip = []
        with open_frame_writer(path, fps=params.fps) as writer:
            for start in range(0, params.frames, 8):
                imgs = ctx.synthesize(ws[start : start + 8])  # [b, 3, H, W]
                mse = ((imgs.clamp(-1, 1) - target) * 127.5).square().mean(dim=(1, 2, 3))
                for j, (img, m) in enumerate(zip(imgs, mse, strict=True)):
                    f = start + j
                    frame = tensor_to_uint8(img)[0]
                    writer.append(frame)
                    if f in shown:
                        strip.append(Image.fromarray(frame))
                    d = w_distance(ws[f], w_avg)
                    per_frame.setdefault(f, []).append((d, float(m)))
                    result.rows.append(
                        {
                            "image": e.name,
                            "category": e.category,
                            "frame": f,
                            "t": f / (params.frames - 1),
                            "dist_to_mean": d,
                            "mse_to_input": float(m),
                            "video": str(path.relative_to(ctx.out)),
                        }
                    )
        rows.append([e.target(), *strip])
        labels.append(f"{e.name}\n({e.category})")
    for f in shown:
        vals = per_frame.get(f, [])
        table.rows.append(
            [f, f / (params.frames - 1), mean(v[0] for v in vals), mean(v[1] for v in vals)]
        )
    result.tables.append(table)
    if rows:
        path = image_grid_figure(
            ctx.out / "random_walk.png",
            rows,
            ["input"] + [f"frame {f}" for f in shown],
            labels,
            "Random walk from the embedded image (left) to the mean face (right)",
        )
        result.figures.append(Figure(path, "Selected frames of each walk; videos in walk/"))
    result.notes += [
        "The paper shows the random walks (faces and cars) only as supplementary videos: no "
        "numbers to compare.",
        f"{params.frames} frames, perturbation σ = {params.perturbation:g} per element (our "
        f"choice; 0 = a straight line), seed {ctx.config.seed} + image index; videos: "
        + ", ".join(f"walk/{e.name}.{params.video}" for e in embeddings if e.ok),
    ]
    return result
