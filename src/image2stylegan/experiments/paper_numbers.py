"""The paper's numbers and observations, typed from Abdal, Qin, Wonka, "Image2StyleGAN" (ICCV 2019).

Data only: the experiments print these beside what they measure. Losses are the paper's
"L (x10^5)" columns (the Eq. 1 value divided by 1e5, on the 0-255 pixel scale of SPEC section 5);
distances are its ||w* - w_avg|| columns. Every value names the table or figure it comes from,
and is kept as the paper prints it (`Printed`: "3.530" stays "3.530" in reports, not "3.53").
tests/test_paper_numbers.py checks each row against the paper's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

__all__ = [
    "CATEGORY_ORDER",
    "FIG10_CONVERGENCE_STEPS",
    "PAPER_SETTINGS",
    "SEQUEL_RECONSTRUCTION",
    "TABLE1_AFFINE",
    "TABLE2_INIT",
    "TABLE3_DEFECTS",
    "PaperRow",
    "PaperSettings",
    "Printed",
]


class Printed(float):
    """A number as the paper prints it: a float for arithmetic, its exact text for reports."""

    text: str

    def __new__(cls, text: str) -> Printed:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Printed({self.text!r})"

    def __format__(self, spec: str) -> str:
        return self.text if not spec else format(float(self), spec)


# Sec. 3.1 / Fig. 17: the 25-image test set, 5 per category, in the figure's row order.
CATEGORY_ORDER: tuple[str, ...] = ("face", "cat", "dog", "car", "painting")


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table: its label as printed, L (x1e5) and ||w* - w_avg||."""

    label: str  # the row label exactly as the paper prints it
    loss_e5: Printed  # L (x10^5): the final Eq. 1 loss / 1e5
    w_dist: Printed  # ||w* - w_avg||

    @classmethod
    def of(cls, label: str, loss_e5: str, w_dist: str) -> PaperRow:
        return cls(label, Printed(loss_e5), Printed(w_dist))


# Table 1 (Sec. 3.2): embedding affinely transformed (aligned) faces, FFHQ StyleGAN, W+.
TABLE1_AFFINE: dict[str, PaperRow] = {
    "translate_right": PaperRow.of("Translation (Right 140 pixels)", "0.782", "48.56"),
    "translate_left": PaperRow.of("Translation (Left 160 pixels)", "0.406", "44.12"),
    "zoom_out": PaperRow.of("Zoom out (2X)", "0.225", "38.04"),
    "zoom_in": PaperRow.of("Zoom in (2X)", "0.718", "40.55"),
    "rotate_90": PaperRow.of("90° Rotation", "0.622", "47.21"),
    "rotate_180": PaperRow.of("180° Rotation", "0.599", "42.93"),
}

# Table 2 (Sec. 5.1): mean final loss and distance per class for the two initialisations,
# keyed (category, init) with init "mean" (w = w_avg) or "random" (U[-1, 1]).
TABLE2_INIT: dict[tuple[str, str], PaperRow] = {
    ("face", "mean"): PaperRow.of("Face, w = w̄", "0.309", "30.67"),
    ("face", "random"): PaperRow.of("Face, Random", "0.351", "35.60"),
    ("cat", "mean"): PaperRow.of("Cat, w = w̄", "0.752", "70.86"),
    ("cat", "random"): PaperRow.of("Cat, Random", "0.740", "70.97"),
    ("dog", "mean"): PaperRow.of("Dog, w = w̄", "0.922", "74.78"),
    ("dog", "random"): PaperRow.of("Dog, Random", "0.845", "75.14"),
    ("painting", "mean"): PaperRow.of("Painting, w = w̄", "3.530", "103.61"),
    ("painting", "random"): PaperRow.of("Painting, Random", "3.451", "105.29"),
    ("car", "mean"): PaperRow.of("Car, w = w̄", "1.390", "82.53"),
    ("car", "random"): PaperRow.of("Car, Random", "1.269", "82.60"),
}

# Table 3 (supplement, for Fig. 3): embedding faces with replaced facial features.
TABLE3_DEFECTS: dict[str, PaperRow] = {
    "none": PaperRow.of("non-defective", "0.204", "29.19"),
    "eyes": PaperRow.of("Eyes", "0.271", "34.90"),
    "nose": PaperRow.of("Nose", "0.311", "39.20"),
    "mouth": PaperRow.of("Mouth", "0.301", "37.04"),
    "eyes_mouth": PaperRow.of("Eyes and Mouth", "0.233", "39.62"),
    "eyes_nose_mouth": PaperRow.of("Eyes, Nose and Mouth", "0.285", "37.59"),
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


class PaperSettings(TypedDict):
    """The setting the paper's numbers were measured in."""

    generator: str
    vgg: str
    steps: int
    lr: float
    space: str
    loss: str
    layers: tuple[str, ...]
    perceptual_size: int
    noise: str


# Sec. 3.1, 5.2, 5.3: the setting every number above was measured in.
PAPER_SETTINGS: PaperSettings = {
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


# The sequel, Abdal, Qin, Wonka, "Image2StyleGAN++: How to Edit the Embedded Images?" (CVPR 2020,
# arXiv 1911.11544), as printed: the reconstruction PSNR of its abstract, of Fig. 4 (W+ only vs
# W+ and noise space) and of Sec. 7.1 (5000 iterations of W_l, then 3000 of Mk_n). It prints
# ranges over its example images, not tables; the noise-space experiment quotes them as text.
SEQUEL_RECONSTRUCTION: dict[str, str] = {
    "abstract": "from 20 dB to 45 dB",
    "wplus": "19 to 22 dB",
    "wplus_noise": "39 to 45 dB",
    "wplus_noise_5000_3000": "44 to 45 dB",
}
