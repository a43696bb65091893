"""Table 1 / Fig. 2 (Sec. 3.2): embedding affinely transformed faces.

The aligned faces are translated 140 px right and 160 px left (pixels at 1024 px, scaled to the
generator's resolution), zoomed out and in by 2x, and rotated by 90° and 180°; each version is
embedded with the base settings and its final loss and ||w* - w_avg|| are compared with Table 1.

Choices the paper leaves open:
- "Zoom out (2X)" / "Zoom in (2X)" are read as a factor 2 on the side length, about the image
  centre (where the aligned face is): zoom out = the whole frame shrunk to half its side (box
  filter) and centred; zoom in = the central half of the side enlarged to the full frame
  (bilinear). 2 is the paper's factor; the two operations are each other's inverse on the face.
- Pixels a shift or zoom-out uncovers are black (`fill`, also `edge` / `reflect`).
- Rotations are counter-clockwise (np.rot90), exact pixel permutations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .context import ExperimentContext
from .figures import bar_chart, image_grid_figure
from .items import ImageItem, faces_or_all
from .measures import group_by, summary
from .paper_numbers import TABLE1_AFFINE, TABLE2_INIT
from .results import Claim, Embedding, ExperimentResult, Figure, Table

__all__ = [
    "DESCRIPTION",
    "TITLE",
    "TRANSFORMS",
    "VARIES",
    "Params",
    "analyse",
    "rotate",
    "run",
    "transform",
    "translate",
    "zoom_in",
    "zoom_out",
]

VARIES: tuple[str, ...] = ()  # EmbedConfig fields set by the variants
TITLE = "Table 1 / Fig. 2 — embedding affinely transformed faces"
DESCRIPTION = """
How sensitive is the embedding to translation, zoom and rotation (Sec. 3.2)? Each (aligned)
face is embedded as it is and after six transformations; the table prints the mean final loss
L (x1e5) and ||w* − w̄|| per transformation beside Table 1.
"""

TRANSFORMS = (
    "original",
    "translate_right",
    "translate_left",
    "zoom_out",
    "zoom_in",
    "rotate_90",
    "rotate_180",
)

Fill = Literal["black", "edge", "reflect"]


@dataclass(frozen=True)
class Params:
    shift_right: int = 140  # px at `reference_resolution` (Table 1: "Right 140 pixels")
    shift_left: int = 160  # px at `reference_resolution` (Table 1: "Left 160 pixels")
    zoom: float = 2.0  # side-length factor of "Zoom out (2X)" and "Zoom in (2X)"
    fill: Fill = "black"  # pixels a shift or zoom-out uncovers
    reference_resolution: int = 1024  # the resolution the paper's pixel counts refer to
    all_images: bool = False  # embed every image, not only the faces

    def __post_init__(self) -> None:
        if self.zoom <= 1:
            raise ValueError(f"zoom must be > 1 (a magnification factor), got {self.zoom}")
        if self.reference_resolution < 1:
            raise ValueError("reference_resolution must be positive")

    def shifts(self, resolution: int) -> tuple[int, int]:
        """(right, left) shifts in px at `resolution`: the paper's px scaled and rounded."""
        scale = resolution / self.reference_resolution
        return round(self.shift_right * scale), round(self.shift_left * scale)


# ---------------------------------------------------------------------------------------------
# The transformations, on [H, W, C] arrays (any float or integer dtype; output float64)


PadMode = Literal["constant", "edge", "reflect"]
_PAD_MODES: dict[str, PadMode] = {"black": "constant", "edge": "edge", "reflect": "reflect"}


def _pad_mode(fill: Fill) -> PadMode:
    return _PAD_MODES[fill]


def translate(img: np.ndarray, dx: int, dy: int = 0, fill: Fill = "black") -> np.ndarray:
    """Shift the content dx px right and dy px down (negative: left / up); out[y, x] =
    img[y - dy, x - dx], uncovered pixels black (or edge / reflected). [H, W, C] -> [H, W, C]."""
    a = np.asarray(img, dtype=np.float64)
    H, W = a.shape[:2]
    if abs(dx) >= W or abs(dy) >= H:
        raise ValueError(f"shift ({dx}, {dy}) leaves nothing of a {W}x{H} image")
    px, py = abs(dx), abs(dy)
    padded = np.pad(a, ((py, py), (px, px), (0, 0)), mode=_pad_mode(fill))
    return padded[py - dy : py - dy + H, px - dx : px - dx + W]


def _resize(a: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """[H, W, C] -> [h, w, C] with torch: 'area' (box filter) or 'bilinear' (half-pixel centres)."""
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # [1, C, H, W]
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    out = F.interpolate(t, size=size, mode=mode, **kwargs)
    return out[0].permute(1, 2, 0).numpy()


def zoom_out(img: np.ndarray, factor: float = 2.0, fill: Fill = "black") -> np.ndarray:
    """Shrink the whole frame by `factor` (box filter) and centre it: the content's side becomes
    round(side / factor), placed at ((H - h) // 2, (W - w) // 2); the rest is black (or the edge /
    reflection of the shrunk frame). [H, W, C] -> [H, W, C]."""
    a = np.asarray(img, dtype=np.float64)
    H, W = a.shape[:2]
    h, w = max(1, round(H / factor)), max(1, round(W / factor))
    small = _resize(a, (h, w), "area")
    top, left = (H - h) // 2, (W - w) // 2
    pad = ((top, H - h - top), (left, W - w - left), (0, 0))
    if fill == "reflect" and max(top, left, H - h - top, W - w - left) >= min(h, w):
        fill = "edge"  # np.pad cannot reflect further than the image itself
    return np.pad(small, pad, mode=_pad_mode(fill))


def zoom_in(img: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Enlarge the centre by `factor`: the central round(side / factor) crop, at
    ((H - h) // 2, (W - w) // 2), resized to the full frame (bilinear). [H, W, C] -> [H, W, C]."""
    a = np.asarray(img, dtype=np.float64)
    H, W = a.shape[:2]
    h, w = max(1, round(H / factor)), max(1, round(W / factor))
    top, left = (H - h) // 2, (W - w) // 2
    return _resize(a[top : top + h, left : left + w], (H, W), "bilinear")


def rotate(img: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate counter-clockwise by a multiple of 90° (an exact pixel permutation)."""
    if degrees % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {degrees}")
    return np.rot90(np.asarray(img, dtype=np.float64), k=(degrees // 90) % 4, axes=(0, 1))


def transform(img: Image.Image, name: str, params: Params) -> Image.Image:
    """Apply one of TRANSFORMS to a square RGB frame (pixel counts scaled to its size)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    right, left = params.shifts(img.width)
    if name == "original":
        out = a
    elif name == "translate_right":
        out = translate(a, right, 0, params.fill)
    elif name == "translate_left":
        out = translate(a, -left, 0, params.fill)
    elif name == "zoom_out":
        out = zoom_out(a, params.zoom, params.fill)
    elif name == "zoom_in":
        out = zoom_in(a, params.zoom)
    elif name == "rotate_90":
        out = rotate(a, 90)
    elif name == "rotate_180":
        out = rotate(a, 180)
    else:
        raise ValueError(f"unknown transformation {name!r}; known: {', '.join(TRANSFORMS)}")
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def labels(params: Params, resolution: int) -> dict[str, str]:
    right, left = params.shifts(resolution)
    z = f"{params.zoom:g}"
    return {
        "original": "No transformation",
        "translate_right": f"Translation (Right {params.shift_right} pixels) = {right} px here",
        "translate_left": f"Translation (Left {params.shift_left} pixels) = {left} px here",
        "zoom_out": f"Zoom out ({z}X)",
        "zoom_in": f"Zoom in ({z}X)",
        "rotate_90": "90° Rotation",
        "rotate_180": "180° Rotation",
    }


# ---------------------------------------------------------------------------------------------


def analyse(embeddings: list[Embedding], params: Params, resolution: int) -> ExperimentResult:
    """Table 1 from the embeddings (variant = transformation name) and the paper's observations."""
    result = ExperimentResult()
    result.rows = [e.row(transformation=e.variant) for e in embeddings]
    result.add_failures(embeddings)
    groups = group_by(embeddings, lambda e: e.variant)
    names = labels(params, resolution)
    table = Table(
        "Table 1: final loss and distance to w̄ per transformation",
        ["transformation", "L x1e5 (ours)", "L x1e5 (paper)", "‖w*−w̄‖ (ours)",
         "‖w*−w̄‖ (paper)", "images"],
    )  # fmt: skip
    measured: dict[str, tuple[float | None, float | None]] = {}
    for t in TRANSFORMS:
        loss, dist, n = summary(groups.get(t, []))
        measured[t] = (loss, dist)
        paper = TABLE1_AFFINE.get(t)
        table.rows.append(
            [names[t], loss, paper.loss_e5 if paper else None, dist,
             paper.w_dist if paper else None, n]
        )  # fmt: skip
    table.notes.append(
        "The paper's Table 1 has no untransformed row; Table 2 gives 0.309 / 30.67 for faces "
        "(w̄ init) and Table 3 0.204 / 29.19 (non-defective)."
    )
    result.tables.append(table)

    # Sec. 3.2: "the translation seems to have the worst performance"
    losses = {t: loss for t in TRANSFORMS[1:] if (loss := measured[t][0]) is not None}
    dists = {t: dist for t in TRANSFORMS[1:] if (dist := measured[t][1]) is not None}
    transformed = list(losses)
    paper_worst = max(TABLE1_AFFINE, key=lambda t: TABLE1_AFFINE[t].loss_e5)
    if losses:
        worst = max(losses, key=losses.__getitem__)
        result.claims.append(
            Claim(
                "Sec. 3.2, Table 1",
                "translation has the worst performance (paper's highest L: "
                f"{names[paper_worst].split(' =')[0]}, {TABLE1_AFFINE[paper_worst].loss_e5})",
                f"highest mean L: {names[worst].split(' =')[0]} ({losses[worst]:.4g})",
                worst.startswith("translate"),
            )
        )
    base_loss, base_dist = measured["original"]
    if losses and base_loss is not None:
        worse = [t for t, loss in losses.items() if loss > base_loss]
        result.claims.append(
            Claim(
                "Sec. 3.2, Fig. 2",
                "transformed faces embed worse than the normal embedding",
                f"{len(worse)} of {len(transformed)} transformations have a higher mean L than "
                f"the untransformed faces ({base_loss:.4g})",
                len(worse) == len(transformed),
            )
        )
    if dists and base_dist is not None:
        farther = [t for t, dist in dists.items() if dist > base_dist]
        paper_min = min(r.w_dist for r in TABLE1_AFFINE.values())
        result.claims.append(
            Claim(
                "Tables 1, 2",
                "transformed faces land farther from w̄ (Table 1: "
                f"{paper_min:.2f}–{max(r.w_dist for r in TABLE1_AFFINE.values()):.2f} vs "
                f"{TABLE2_INIT[('face', 'mean')].w_dist} for faces in Table 2)",
                f"{len(farther)} of {len(dists)} transformations have a larger mean "
                f"‖w*−w̄‖ than the untransformed faces ({base_dist:.4g})",
                len(farther) == len(dists),
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    chosen, note = faces_or_all(items, params.all_images)
    originals, failed = ctx.prepare_inputs(chosen)
    jobs: list[tuple[str, ImageItem]] = []
    for item in originals:
        frame = ctx.frame(item)
        for t in TRANSFORMS:
            if t == "original":  # the prepared photo itself
                jobs.append((t, item))
                continue
            saved = ctx.write_input(t, item.name, transform(frame, t, params))
            jobs.append((t, ImageItem(saved.path, item.name, item.category)))
    embeddings = ctx.embed(jobs, label="affine") if jobs else []
    result = analyse(embeddings, params, ctx.resolution)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    right, left = params.shifts(ctx.resolution)
    result.notes += [
        note,
        f"At {ctx.resolution} px the shifts are {right} px right and {left} px left "
        f"({params.shift_right} and {params.shift_left} px at {params.reference_resolution} px).",
        f"Zoom: factor {params.zoom:g} on the side length about the centre (zoom out: box-filter "
        "shrink, centred; zoom in: central crop, bilinear enlargement); uncovered pixels: "
        f"{params.fill}. Rotations counter-clockwise.",
    ]
    _figures(ctx, embeddings, params, result)
    return result


def _figures(
    ctx: ExperimentContext, embeddings: list[Embedding], params: Params, result: ExperimentResult
) -> None:
    by_image = group_by(embeddings, lambda e: e.name)
    names = labels(params, ctx.resolution)
    if by_image:
        rows, row_labels = [], []
        for name, embs in by_image.items():
            by_t = {e.variant: e for e in embs}
            rows.append([by_t[t].target() if t in by_t else None for t in TRANSFORMS])
            rows.append([by_t[t].reconstruction() if t in by_t else None for t in TRANSFORMS])
            row_labels += [f"{name}\ninput", f"{name}\nembedded"]
        cols = ["(a) original", "(b) right", "(c) left", "(d) zoom out", "(e) zoom in",
                "(f) 90°", "(g) 180°"]  # fmt: skip
        path = image_grid_figure(
            ctx.out / "affine_grid.png", rows, cols, row_labels, "Fig. 2: inputs and embeddings"
        )
        result.figures.append(Figure(path, "Inputs (odd rows) and embeddings (even rows), Fig. 2"))
    table = result.tables[0]
    keys = list(TRANSFORMS[1:])
    path = bar_chart(
        ctx.out / "affine_loss.png",
        [names[t].split(" =")[0] for t in keys],
        [
            ("ours", [table.get(names[t], "L x1e5 (ours)") for t in keys]),
            ("paper", [TABLE1_AFFINE[t].loss_e5 for t in keys]),
        ],
        "Table 1: final loss per transformation",
        "L (x1e5)",
    )
    result.figures.append(Figure(path, "Final loss L (x1e5) per transformation, ours vs paper"))
