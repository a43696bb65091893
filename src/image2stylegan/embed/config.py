"""Settings of Algorithm 1 (Sec. 5): one frozen dataclass, paper defaults, and two presets.

The Image2StyleGAN++ noise stage (Abdal, Qin, Wonka, CVPR 2020, Sec. 4.2 and 6.2) is three more
fields, off by default: `noise_steps` steps that optimise only the noise maps after the W+ steps
(sequential, as the sequel insists), with `noise_lr` and `noise_loss`.

Pivotal tuning (Roich, Mokady, Bermano, Cohen-Or, "Pivotal Tuning for Latent-based Editing of
Real Images", ACM TOG 2022, arXiv 2106.05744) is a third stage, also off by default: after the
latent stages, `pti_steps` steps tune the generator's synthesis weights with the embedded code
(the pivot) fixed, with the paper's settings as defaults (Adam, lr 3e-4, LPIPS + L2 of weight 1,
locality regulariser of weight 0.1 at distance 30); `embed.pti` has the details.

`EmbedConfig()` is the paper: W+, init w̄, Eq. 1 loss (VGG-16 conv1_1, conv1_2, conv3_2, conv4_2
+ MSE, all weights 1, perceptual term at 256 px), Adam(lr 0.01, betas (0.9, 0.999), eps 1e-8),
5000 steps, constant noise. `PRESETS["nvidia"]` reproduces NVIDIA's projector loop
(stylegan2-ada-pytorch `projector.py`) so both can be compared on the same image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..models.vgg16 import canonical_layer_name

__all__ = [
    "MAX_STEPS",
    "NOISE_LOSSES",
    "PAPER_LAYERS",
    "PAPER_NOISE_STEPS",
    "PAPER_PTI_STEPS",
    "PRESETS",
    "PTI_LOSSES",
    "EmbedConfig",
    "parse_loss",
]

Space = Literal["w+", "w", "z"]
NoiseHandling = Literal["const", "resample", "restart"]
NoiseLoss = Literal["mse", "perceptual+mse"]
PTILoss = Literal["auto", "lpips+mse", "perceptual+mse"]
Precision = Literal["fp32", "bf16", "fp16"]

PAPER_LAYERS = ("conv1_1", "conv1_2", "conv3_2", "conv4_2")  # Eq. 2
LOSS_TERMS = ("perceptual", "mse", "lpips")
MAX_STEPS = 1_000_000  # 200x the paper's 5000 (the loss history is kept per step)
MAX_PERCEPTUAL_SIZE = 16384  # px: the largest image side read
MAX_SEED = 2**63  # torch generators take seeds in [0, 2^64); kept within a signed int64
NOISE_LOSSES: tuple[str, ...] = ("mse", "perceptual+mse")
# Image2StyleGAN++ Sec. 7.1 (improved reconstruction): 5000 W+ steps, then 3000 noise steps.
PAPER_NOISE_STEPS = 3000
# PTI, implementation details: 350 tuning steps after the inversion.
PAPER_PTI_STEPS = 350
PTI_LOSSES: tuple[str, ...] = ("auto", "lpips+mse", "perceptual+mse")


@dataclass(frozen=True)
class EmbedConfig:
    """Every choice the paper ablates, as one field each (CLI options map one-to-one)."""

    space: Space = "w+"  # Sec. 3.3: W+ (18 x 512) embeds; W and Z do not
    init: str = "mean"  # Sec. 5.1: "mean" = w̄ (faces), "random" = U[-1, 1] (other classes)
    steps: int = 5000  # Sec. 5.3: faces converge by ~1000, paintings by ~5000 (Fig. 10)
    lr: float = 0.01  # Sec. 5.3, Adam
    betas: tuple[float, float] = (0.9, 0.999)  # Sec. 5.3
    eps: float = 1e-8  # Sec. 5.3
    loss: str = "perceptual+mse"  # Eq. 1; terms "perceptual", "mse", "lpips" joined with "+"
    layers: tuple[str, ...] = PAPER_LAYERS  # Eq. 2: VGG-16 layers of the perceptual term
    layer_weights: tuple[float, ...] | None = None  # lambda_j, None = all 1 (Eq. 2)
    mse_weight: float = 1.0  # lambda_mse (Eq. 1)
    lpips_weight: float = 1.0  # weight of the optional LPIPS term
    perceptual_size: int | None = 256  # supplement "resizing trick"; None = full res (Fig. 12)
    noise: NoiseHandling = "const"  # Fig. 16: const (paper), resample each step, restart
    seed: int = 0  # random init / noise; the result depends only on the image and the seed
    # --- Image2StyleGAN++ noise stage (Sec. 4.2, 6.2; off by default) -------------------------
    noise_steps: int = 0  # steps optimising only the noise maps after the W+ steps (paper: 3000)
    noise_lr: float = 5.0  # Adam lr of the noise maps in that stage (Sec. 4.2)
    noise_loss: NoiseLoss = "mse"  # Mk_n (Sec. 6.2): pixel MSE only; or the W+ stage's Eq. 1
    noise_joint: bool = False  # the rejected alternative: noise and W+ jointly from step 1
    w_rows: tuple[int, int] | None = None  # optimise only W+ rows [start, stop) (Sec. 7.3)
    # --- Pivotal tuning (Roich et al. 2022; off by default) ------------------------------------
    pti_steps: int = 0  # steps tuning the synthesis weights around the pivot (paper: 350)
    pti_lr: float = 3e-4  # Adam lr of the weights (paper)
    pti_loss: PTILoss = "auto"  # lpips+mse: LPIPS + lambda_L2 * L2 (paper); perceptual+mse:
    # Eq. 1 on the run's VGG-16; auto: lpips+mse when its weights are here, else perceptual+mse
    pti_l2_weight: float = 1.0  # lambda_L2 of lpips+mse (paper: 1), L2 on the [-1, 1] scale
    pti_locality: float = 0.1  # lambda_R of the locality regulariser (paper: 0.1); 0 = off
    pti_locality_alpha: float = 30.0  # distance of its codes from the pivot in W (paper: 30)
    pti_shared: bool = False  # one tuned generator for all the images of a run (multi-ID PTI)
    # --- NVIDIA projector extras (all off in the paper) ----------------------------------------
    lr_rampup: float = 0.0  # fraction of the steps with a linear lr warm-up
    lr_rampdown: float = 0.0  # fraction of the steps with a cosine lr ramp-down
    w_noise_factor: float = 0.0  # latent noise std as a fraction of the W std, decaying
    w_noise_ramp: float = 0.75  # fraction of the steps over which that noise decays to 0
    noise_regularize_weight: float = 0.0  # NVIDIA's noise-map autocorrelation penalty
    optimize_noise: bool = False  # optimise the noise maps together with the latent
    w_stats: Literal["generator", "sampled"] = "generator"  # w̄ = G.w_avg, or from 10k samples
    # --- execution -----------------------------------------------------------------------------
    precision: Precision = "fp32"  # autocast dtype for synthesis + loss (CUDA); fp32 = exact
    compile: bool = False  # torch.compile the forward + loss
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.space not in ("w+", "w", "z"):
            raise ValueError(f"space must be w+, w or z, got {self.space!r}")
        if self.noise not in ("const", "resample", "restart"):
            raise ValueError(f"noise must be const, resample or restart, got {self.noise!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if not 0 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be 0 to {MAX_STEPS:,}, got {self.steps:,}")
        if self.perceptual_size is not None and not (
            16 <= self.perceptual_size <= MAX_PERCEPTUAL_SIZE
        ):
            raise ValueError(
                f"perceptual_size must be 16 to {MAX_PERCEPTUAL_SIZE} px or None, got "
                f"{self.perceptual_size}"
            )
        if not 0 <= self.seed < MAX_SEED:
            raise ValueError(f"seed must be in [0, 2^63), got {self.seed}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1e3):
            raise ValueError(f"lr must be a positive number up to 1000, got {self.lr}")
        for name in ("mse_weight", "lpips_weight", "noise_regularize_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1e12):
                raise ValueError(f"{name} must be a number from 0 to 1e12, got {value}")
        weights = self.layer_weights or ()
        if not all(math.isfinite(v) and 0 <= v <= 1e12 for v in weights):
            raise ValueError(f"layer weights must be numbers from 0 to 1e12, got {list(weights)}")
        parse_loss(self.loss)
        for name in self.layers:
            canonical_layer_name(name)  # ValueError naming the known layers
        if self.noise_steps < 0:
            raise ValueError(f"noise_steps must be >= 0, got {self.noise_steps}")
        if self.noise_loss not in NOISE_LOSSES:
            raise ValueError(
                f"noise loss must be {' or '.join(NOISE_LOSSES)}, got {self.noise_loss!r}"
            )
        if not self.noise_lr > 0:
            raise ValueError(f"noise_lr must be positive, got {self.noise_lr}")
        if self.noise_joint and (self.noise_steps or self.optimize_noise):
            raise ValueError(
                "noise_joint optimises the noise with W+ from the first step; it excludes the "
                "sequential noise stage (noise_steps) and NVIDIA's optimize_noise"
            )
        if self.w_rows is not None:
            start, stop = self.w_rows
            if not 0 <= start < stop:
                raise ValueError(
                    f"w_rows must be [start, stop) with 0 <= start < stop, got {start, stop}"
                )
            if self.space != "w+":
                raise ValueError("w_rows selects rows of a W+ code: it needs space w+")
        if self.noise_steps and self.optimize_noise:
            raise ValueError(
                "the noise stage (noise_steps) optimises the noise after W+; NVIDIA's "
                "optimize_noise optimises it jointly: choose one"
            )
        if not 0 <= self.pti_steps <= MAX_STEPS:
            raise ValueError(f"pti_steps must be 0 to {MAX_STEPS:,}, got {self.pti_steps:,}")
        if not (math.isfinite(self.pti_lr) and 0 < self.pti_lr <= 1.0):
            raise ValueError(f"pti_lr must be a positive number up to 1, got {self.pti_lr}")
        if self.pti_loss not in PTI_LOSSES:
            raise ValueError(
                f"pti loss must be {', '.join(PTI_LOSSES[1:])} or auto, got {self.pti_loss!r}"
            )
        for name in ("pti_l2_weight", "pti_locality", "pti_locality_alpha"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1e6):
                raise ValueError(f"{name} must be a number from 0 to 1e6, got {value}")
        if self.layer_weights is not None and len(self.layer_weights) != len(self.layers):
            raise ValueError(
                f"{len(self.layer_weights)} layer weights given for {len(self.layers)} layers"
            )

    @property
    def loss_terms(self) -> tuple[str, ...]:
        return parse_loss(self.loss)

    @property
    def latent_steps(self) -> int:
        """W+ steps and noise-stage steps: the steps that optimise the code (and noise maps)."""
        return self.steps + self.noise_steps

    @property
    def total_steps(self) -> int:
        """W+, noise-stage and pivotal-tuning steps: the length of the one step loop."""
        return self.steps + self.noise_steps + self.pti_steps

    @property
    def optimizes_noise(self) -> bool:
        """Whether any step optimises the noise maps (noise stage, joint or NVIDIA's)."""
        return self.noise_steps > 0 or self.noise_joint or self.optimize_noise

    def replace(self, **changes: Any) -> EmbedConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    def fingerprint(self) -> str:
        """A short hash of everything that changes the optimisation's result (resume safety)."""
        d = self.to_dict()
        for key in ("compile",):  # execution details that do not change the numbers
            d.pop(key)
        if not (self.noise_steps or self.noise_joint):  # unused: keep older fingerprints valid
            for key in ("noise_steps", "noise_lr", "noise_loss", "noise_joint"):
                d.pop(key)
        if self.w_rows is None:
            d.pop("w_rows")
        if not self.pti_steps:  # unused: keep older fingerprints valid
            for key in [k for k in d if k.startswith("pti_")]:
                d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def parse_loss(loss: str) -> tuple[str, ...]:
    """'perceptual+mse' -> ('perceptual', 'mse'); raises ValueError for unknown terms."""
    terms = tuple(t.strip().lower() for t in loss.split("+") if t.strip())
    unknown = [t for t in terms if t not in LOSS_TERMS]
    if not terms or unknown:
        raise ValueError(
            f"loss {loss!r}: use terms {', '.join(LOSS_TERMS)} joined with '+' "
            "(e.g. perceptual+mse, the paper's Eq. 1)"
        )
    return terms


PRESETS: dict[str, EmbedConfig] = {
    # Algorithm 1 with the paper's settings (Sec. 5).
    "paper": EmbedConfig(),
    # NVIDIA's projector (stylegan2-ada-pytorch projector.py): W space, LPIPS distance, lr 0.1
    # with 5 % warm-up and 25 % cosine ramp-down, latent noise 0.05 * w_std decaying over 75 %,
    # noise maps optimised with an autocorrelation penalty of weight 1e5, 1000 steps,
    # w̄ and w_std from 10 000 mapped samples.
    "nvidia": EmbedConfig(
        space="w",
        init="mean",
        steps=1000,
        lr=0.1,
        loss="lpips",
        perceptual_size=256,
        lr_rampup=0.05,
        lr_rampdown=0.25,
        w_noise_factor=0.05,
        w_noise_ramp=0.75,
        noise_regularize_weight=1e5,
        optimize_noise=True,
        w_stats="sampled",
    ),
}
