"""Table 3 / Fig. 3 (Sec. 3.2 and supplement): embedding faces with replaced facial features.

Each face's eyes, nose, mouth, eyes + mouth, and eyes + nose + mouth are replaced by the same
features of another face (the next face of the set, in order), and every version is embedded.

Regions come from dlib's 68 landmarks (iBUG order) of the prepared (aligned) frame:
- eyes: two boxes, points 36-41 (image-left eye) and 42-47 (image-right eye);
- nose: points 27-35 (bridge and nostrils); mouth: points 48-67 (outer and inner lip).
A box is the landmarks' bounding box grown by `margin` x the inter-ocular distance (between the
two eye centres) on every side, in whole pixels: x0 = floor(min x - pad), x1 = ceil(max x + pad)
+ 1 (half-open, pixel centres at integers as dlib reports them), clipped to the frame. The donor's
box for the same feature is resized (Lanczos) to the target box and pasted over it: a hard-edged
rectangle, as in Fig. 3. Patches are cut at max(resolution, 256) px (where dlib finds the
landmarks) and the result is resized to the generator's frame. With a single face there is no
donor: the regions are filled with the face's mean colour instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .context import ExperimentContext
from .figures import image_grid_figure
from .items import ImageItem, faces_or_all
from .measures import group_by, summary
from .paper_numbers import TABLE3_DEFECTS
from .results import Claim, Embedding, ExperimentResult, Figure, Table

__all__ = [
    "DEFECTS",
    "DESCRIPTION",
    "FEATURES",
    "TITLE",
    "VARIES",
    "Params",
    "analyse",
    "feature_boxes",
    "paste_features",
    "run",
]

VARIES: tuple[str, ...] = ()  # EmbedConfig fields set by the variants
TITLE = "Table 3 / Fig. 3 — embedding faces with replaced features"
DESCRIPTION = """
How robust is the embedding to defects (Sec. 3.2, supplement)? The eyes, nose and mouth of each
face (and combinations) are replaced by another face's, located with the 68 dlib landmarks, and
every version is embedded; the table prints the mean final loss L (x1e5) and ||w* − w̄|| per
defect beside Table 3.
"""

# 68-point iBUG landmark index ranges [start, end) of each feature's boxes
FEATURES: dict[str, tuple[tuple[int, int], ...]] = {
    "eyes": ((36, 42), (42, 48)),
    "nose": ((27, 36),),
    "mouth": ((48, 68),),
}
# Table 3's rows: which features are replaced
DEFECTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "eyes": ("eyes",),
    "nose": ("nose",),
    "mouth": ("mouth",),
    "eyes_mouth": ("eyes", "mouth"),
    "eyes_nose_mouth": ("eyes", "nose", "mouth"),
}
WORK_SIZE = 256  # patches are cut at least at this size (dlib needs faces of ~40+ px)

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), half-open pixel box


@dataclass(frozen=True)
class Params:
    margin: float = 0.15  # box growth on every side, as a fraction of the inter-ocular distance
    all_images: bool = False  # use every image, not only faces (they must contain a face)

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")


def feature_boxes(
    landmarks: np.ndarray,  # [68, 2] (x, y) in frame pixels
    feature: str,  # a key of FEATURES
    size: tuple[int, int],  # frame (width, height)
    margin: float = 0.15,
) -> list[Box]:
    """The feature's boxes: landmark bounding boxes grown by margin x inter-ocular distance."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {lm.shape}")
    eye_distance = float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))
    pad = margin * eye_distance
    W, H = size
    boxes = []
    for start, end in FEATURES[feature]:
        pts = lm[start:end]
        x0 = max(0, math.floor(pts[:, 0].min() - pad))
        y0 = max(0, math.floor(pts[:, 1].min() - pad))
        x1 = min(W, math.ceil(pts[:, 0].max() + pad) + 1)
        y1 = min(H, math.ceil(pts[:, 1].max() + pad) + 1)
        boxes.append((x0, y0, x1, y1))
    return boxes


def paste_features(
    image: Image.Image,  # the face
    landmarks: np.ndarray,  # its [68, 2] landmarks
    features: Sequence[str],  # which features to replace
    donor: Image.Image | None = None,  # the other face (None: fill with the face's mean colour)
    donor_landmarks: np.ndarray | None = None,  # the donor's [68, 2] landmarks
    margin: float = 0.15,
) -> tuple[Image.Image, list[Box]]:
    """Replace each feature's boxes by the donor's (resized to fit); returns the new image and
    the boxes pasted (in the face's pixels). Pixels outside the boxes are untouched."""
    out = image.convert("RGB").copy()
    fill = tuple(round(c) for c in np.asarray(out, dtype=np.float64).mean(axis=(0, 1)))
    pasted = []
    for feature in features:
        boxes = feature_boxes(landmarks, feature, out.size, margin)
        if donor is not None:
            if donor_landmarks is None:
                raise ValueError("a donor face needs its landmarks")
            donor_boxes = feature_boxes(donor_landmarks, feature, donor.size, margin)
        for k, box in enumerate(boxes):
            w, h = box[2] - box[0], box[3] - box[1]
            if w <= 0 or h <= 0:
                continue
            if donor is None:
                patch = Image.new("RGB", (w, h), fill)
            else:
                patch = donor.convert("RGB").crop(donor_boxes[k])
                patch = patch.resize((w, h), Image.Resampling.LANCZOS)
            out.paste(patch, box[:2])
            pasted.append(box)
    return out, pasted


def analyse(embeddings: list[Embedding]) -> ExperimentResult:
    """Table 3 from embeddings whose variant is the defect name."""
    result = ExperimentResult()
    result.rows = [e.row(defect=e.variant) for e in embeddings]
    result.add_failures(embeddings)
    groups = group_by(embeddings, lambda e: e.variant)
    table = Table(
        "Table 3: final loss and distance to w̄ per defect",
        ["defect", "L x1e5 (ours)", "L x1e5 (paper)", "‖w*−w̄‖ (ours)", "‖w*−w̄‖ (paper)",
         "images"],
    )  # fmt: skip
    dists: dict[str, float | None] = {}
    for d in DEFECTS:
        loss, dist, n = summary(groups.get(d, []))
        dists[d] = dist
        paper = TABLE3_DEFECTS[d]
        table.rows.append([paper.label, loss, paper.loss_e5, dist, paper.w_dist, n])
    result.tables.append(table)
    defective = {d: v for d in DEFECTS if d != "none" and (v := dists[d]) is not None}
    base = dists["none"]
    if base is not None and defective:
        farther = [d for d, v in defective.items() if v > base]
        p = TABLE3_DEFECTS
        result.claims.append(
            Claim(
                "supplement, Table 3",
                "defective faces embed farther from the mean face than non-defective ones "
                f"({min(p[d].w_dist for d in p if d != 'none')}–"
                f"{max(p[d].w_dist for d in p if d != 'none')} vs {p['none'].w_dist})",
                f"{len(farther)} of {len(defective)} defects have a larger mean ‖w*−w̄‖ than "
                f"the non-defective faces ({base:.4g})",
                len(farther) == len(defective),
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    chosen, note = faces_or_all(items, params.all_images)
    work = max(ctx.resolution, WORK_SIZE)
    prepared, failed = ctx.prepare(chosen, size=work, landmarks=True)
    jobs: list[tuple[str, ImageItem]] = []
    donors: dict[str, str] = {}
    faces = [(item, t.frame, t.landmarks) for item, t in prepared if t.landmarks is not None]
    for k, (item, frame, lm) in enumerate(faces):
        donor = faces[(k + 1) % len(faces)] if len(faces) > 1 else None
        donors[item.name] = donor[0].name if donor else "mean colour"
        for d, features in DEFECTS.items():
            img, _ = paste_features(
                frame,
                lm,
                features,
                donor[1] if donor else None,
                donor[2] if donor else None,
                params.margin,
            )
            if work != ctx.resolution:
                img = img.resize((ctx.resolution, ctx.resolution), Image.Resampling.LANCZOS)
            saved = ctx.write_input(d, item.name, img)
            jobs.append((d, ImageItem(saved.path, item.name, item.category)))
    embeddings = ctx.embed(jobs, label="defects") if jobs else []
    result = analyse(embeddings)
    for row in result.rows:
        row["donor"] = donors.get(row["image"], "")
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes += [
        note,
        "Donors (features taken from): " + ", ".join(f"{a} ← {b}" for a, b in donors.items()) + ".",
        f"Regions: landmark boxes (eyes 36-47 as two boxes, nose 27-35, mouth 48-67) grown by "
        f"{params.margin:g} x the inter-ocular distance, cut at {work} px.",
    ]
    by_image = group_by(embeddings, lambda e: e.name)
    if by_image:
        rows, row_labels = [], []
        for name, embs in by_image.items():
            by_d = {e.variant: e for e in embs}
            rows.append([by_d[d].target() if d in by_d else None for d in DEFECTS])
            rows.append([by_d[d].reconstruction() if d in by_d else None for d in DEFECTS])
            row_labels += [f"{name}\ninput", f"{name}\nembedded"]
        path = image_grid_figure(
            ctx.out / "defects_grid.png",
            rows,
            [TABLE3_DEFECTS[d].label for d in DEFECTS],
            row_labels,
            "Fig. 3: defective faces and their embeddings",
        )
        result.figures.append(Figure(path, "Inputs (odd rows) and embeddings (even rows), Fig. 3"))
    return result
