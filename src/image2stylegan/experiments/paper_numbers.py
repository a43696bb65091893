"""The paper's numbers and observations, typed from Abdal, Qin, Wonka, "Image2StyleGAN" (ICCV 2019).

Data only: the experiments print these beside what they measure. Losses are the paper's
"L (x10^5)" columns (the Eq. 1 value divided by 1e5, on the 0-255 pixel scale of SPEC section 5);
distances are its ||w* - w_avg|| columns. Every value names the table or figure it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATEGORY_ORDER",
    "FIG10_CONVERGENCE_STEPS",
    "PAPER_SETTINGS",
    "TABLE1_AFFINE",
    "TABLE2_INIT",
    "TABLE3_DEFECTS",
    "PaperRow",
]

# Sec. 3.1 / Fig. 17: the 25-image test set, 5 per category, in the figure's row order.
CATEGORY_ORDER: tuple[str, ...] = ("face", "cat", "dog", "car", "painting")


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table: its label as printed, L (x1e5) and ||w* - w_avg||."""

    label: str  # the row label exactly as the paper prints it
    loss_e5: float  # L (x10^5): the final Eq. 1 loss / 1e5
    w_dist: float  # ||w* - w_avg||


# Table 1 (Sec. 3.2): embedding affinely transformed (aligned) faces, FFHQ StyleGAN, W+.
TABLE1_AFFINE: dict[str, PaperRow] = {
    "translate_right": PaperRow("Translation (Right 140 pixels)", 0.782, 48.56),
    "translate_left": PaperRow("Translation (Left 160 pixels)", 0.406, 44.12),
    "zoom_out": PaperRow("Zoom out (2X)", 0.225, 38.04),
    "zoom_in": PaperRow("Zoom in (2X)", 0.718, 40.55),
    "rotate_90": PaperRow("90° Rotation", 0.622, 47.21),
    "rotate_180": PaperRow("180° Rotation", 0.599, 42.93),
}

# Table 2 (Sec. 5.1): mean final loss and distance per class for the two initialisations,
# keyed (category, init) with init "mean" (w = w_avg) or "random" (U[-1, 1]).
TABLE2_INIT: dict[tuple[str, str], PaperRow] = {
    ("face", "mean"): PaperRow("Face, w = w̄", 0.309, 30.67),
    ("face", "random"): PaperRow("Face, Random", 0.351, 35.60),
    ("cat", "mean"): PaperRow("Cat, w = w̄", 0.752, 70.86),
    ("cat", "random"): PaperRow("Cat, Random", 0.740, 70.97),
    ("dog", "mean"): PaperRow("Dog, w = w̄", 0.922, 74.78),
    ("dog", "random"): PaperRow("Dog, Random", 0.845, 75.14),
    ("painting", "mean"): PaperRow("Painting, w = w̄", 3.530, 103.61),
    ("painting", "random"): PaperRow("Painting, Random", 3.451, 105.29),
    ("car", "mean"): PaperRow("Car, w = w̄", 1.390, 82.53),
    ("car", "random"): PaperRow("Car, Random", 1.269, 82.60),
}

# Table 3 (supplement, for Fig. 3): embedding faces with replaced facial features.
TABLE3_DEFECTS: dict[str, PaperRow] = {
    "none": PaperRow("non-defective", 0.204, 29.19),
    "eyes": PaperRow("Eyes", 0.271, 34.90),
    "nose": PaperRow("Nose", 0.311, 39.20),
    "mouth": PaperRow("Mouth", 0.301, 37.04),
    "eyes_mouth": PaperRow("Eyes and Mouth", 0.233, 39.62),
    "eyes_nose_mouth": PaperRow("Eyes, Nose and Mouth", 0.285, 37.59),
}

# Sec. 5.3 / Fig. 10: "the loss value of the human face image drops the quickest and converges at
# around 1000 optimization steps; those of the cat, the dog and the car images converge slower at
# around 3000 optimization steps; while the painting curve is the slowest and converges around
# 5000 optimization steps."
FIG10_CONVERGENCE_STEPS: dict[str, int] = {
    "face": 1000,
    "cat": 3000,
    "dog": 3000,
    "car": 3000,
    "painting": 5000,
}

# Sec. 3.1, 5.2, 5.3: the setting every number above was measured in.
PAPER_SETTINGS: dict[str, object] = {
    "generator": "ffhq-1024",  # StyleGAN (v1) trained on FFHQ, 1024 x 1024, 18 x 512 W+
    "vgg": "vgg16-caffe",  # VGG-16 (original weights) for the perceptual term
    "steps": 5000,
    "lr": 0.01,
    "space": "w+",
    "loss": "perceptual+mse",
    "layers": ("conv1_1", "conv1_2", "conv3_2", "conv4_2"),
    "perceptual_size": 256,
    "noise": "const",
}
