"""Pivotal tuning (PTI): Roich, Mokady, Bermano, Cohen-Or, "Pivotal Tuning for Latent-based
Editing of Real Images" (ACM TOG 2022, arXiv 2106.05744), the stage after the latent stages.

The latent stages find a code w_p (the pivot) whose image G(w_p; θ) is close to the target x but
not equal to it. PTI keeps w_p fixed and tunes the synthesis weights θ so that the pivot draws x:

    L_pt     = L_LPIPS(G(w_p; θ*), x) + λ_L2 · L_L2(G(w_p; θ*), x)                (pivot loss)
    w_r      = w_p + α (w_z - w_p) / ||w_z - w_p||,   w_z = f(z), z ~ N(0, I)     (a code near w_p)
    L_R      = L_LPIPS(G(w_r; θ), G(w_r; θ*)) + λ_L2 · L_L2(G(w_r; θ), G(w_r; θ*))   (locality)
    θ*       = argmin over Adam steps of L_pt + λ_R · L_R

Defaults (`EmbedConfig`) are the paper's: Adam lr 3e-4, 350 steps, λ_L2 = 1, λ_R = 0.1, α = 30,
one w_r per step; L2 is the mean squared error of images in [-1, 1]. As in the authors' release,
w_z is mapped with truncation ψ = 0.5 (`LOCALITY_PSI`) by the original mapping network, and α is
measured over the whole [num_ws, w_dim] code. The regulariser compares the tuned synthesis with
the original one, so codes away from the pivot keep rendering as before: that is what keeps the
tuned generator editable. The authors' early stop (LPIPS below 0.06) is not applied: every run
does its `pti_steps`.

`pti_loss="perceptual+mse"` replaces LPIPS + L2 by the W+ stage's Eq. 1 (VGG-16 perceptual term +
pixel MSE on the 0-255 scale), for machines without the LPIPS weights; "auto" picks lpips+mse
when its weights are in the cache and perceptual+mse otherwise, saying so (`resolve_pti_loss`).

Only the synthesis network is tuned (`synthesis_parameters`): the mapping network, `w_avg`, the
stored noise and the filters stay, so z sampling and truncation work on the tuned generator as
before. One `TuningRun` is one tuned copy of the weights: per image by default (the runner steps
a batch's runs in lockstep, so progress and resume are per batch), or one for many images
(`pti_shared`, the paper's multi-image tuning: each step's pivot loss is the mean over a
minibatch of them). The generator passed in is never changed: it is the θ the regulariser
compares with, and checkpoint files are never written over. Tuning runs in float32.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..losses import Image2StyleGANLoss
from ..models.base import Generator
from ..models.vgg16 import VGG16Features
from .config import EmbedConfig

__all__ = [
    "LOCALITY_PSI",
    "LPIPS_SIZE",
    "PTI_TERMS",
    "PTIState",
    "PivotalTuner",
    "TuningRun",
    "locality_codes",
    "resolve_pti_loss",
    "synthesis_parameters",
]

logger = logging.getLogger(__name__)

LOCALITY_PSI = 0.5  # truncation of the regulariser's w_z (the authors' release)
PIXEL_SCALE = 127.5  # Image2StyleGANLoss's MSE is on the 0-255 scale: L2 on [-1, 1] = mse / 127.5²
LPIPS_SIZE = 256  # LPIPS sees images larger than this at 256 px (as the authors' code)
PTI_TERMS = ("total", "pivot", "mse", "locality")  # the columns of a run's history
REFERENCE_W_DIM = 512  # the W width the paper's alpha = 30 is a distance in (FFHQ StyleGAN2)

LossFactory = Callable[[], Image2StyleGANLoss]
_warned: list[bool] = []  # the perceptual+mse fallback is announced once per process


def synthesis_parameters(G: Generator) -> dict[str, nn.Parameter]:
    """G's parameters that pivotal tuning changes, by state-dict name: all but the mapping
    network's (`mapping_net` of StyleGAN1, `mapping_network` of StyleGAN2/3)."""
    return {n: p for n, p in G.named_parameters() if not n.startswith("mapping")}


def locality_codes(
    pivot: torch.Tensor,  # [N, num_ws, w_dim] w_p
    w_z: torch.Tensor,  # [N, num_ws, w_dim] mapped random codes
    alpha: float,  # the distance ||w_r - w_p|| over the whole code
) -> torch.Tensor:
    """w_r = w_p + alpha (w_z - w_p) / ||w_z - w_p|| per image -> [N, num_ws, w_dim]."""
    d = w_z - pivot
    norm = d.flatten(1).norm(dim=1).clamp_min(1e-8)
    return pivot + alpha * d / norm[:, None, None]


def resolve_pti_loss(config: EmbedConfig) -> EmbedConfig:
    """`config` with pti_loss "auto" made concrete: lpips+mse (the paper's) when LPIPS's weights
    are on this machine (nothing is downloaded), else perceptual+mse on the run's VGG-16, logged
    as a warning. Explicit choices are kept (lpips+mse then loads, or downloads, its weights)."""
    if config.pti_loss != "auto" or not config.pti_steps:
        return config
    from ..metrics import lpips_available

    if lpips_available():
        return config.replace(pti_loss="lpips+mse")
    if not _warned:
        _warned.append(True)
        logger.warning(
            "pivotal tuning uses perceptual+mse (Eq. 1 on the run's VGG-16): the paper's LPIPS "
            "weights are not in the weights cache (`image2stylegan weights download "
            "vgg16-torchvision` and `lpips-vgg` to use LPIPS + L2, or pass --pti-loss)"
        )
    return config.replace(pti_loss="perceptual+mse")


def loss_factory(
    config: EmbedConfig,  # pti_loss concrete (resolve_pti_loss)
    resolution: int,  # the generator's frame side (LPIPS never upsamples)
    vgg: Callable[[], VGG16Features],  # perceptual+mse's VGG-16 (called once, when needed)
    device: torch.device,
) -> LossFactory:
    """A function returning a fresh pivot loss (its own target cache) on shared networks.

    - "lpips+mse": LPIPS(img, x) + λ_L2 · mean((img - x)²) on [-1, 1] (the MSE term of
      `Image2StyleGANLoss` is on the 0-255 scale, so its weight is λ_L2 / 127.5²); images larger
      than 256 px are compared at 256 px. Terms "lpips", "mse", "total".
    - "perceptual+mse": the W+ stage's Eq. 1 (layers, weights, perceptual size of `config`).
    """
    kind = config.pti_loss
    if kind == "lpips+mse":
        from ..losses import load_lpips

        module = load_lpips(device=device)
        size = LPIPS_SIZE if resolution > LPIPS_SIZE else None
        weight = config.pti_l2_weight / PIXEL_SCALE**2
        return lambda: Image2StyleGANLoss(
            None, layers=(), mse_weight=weight, perceptual_size=size, lpips=module
        )
    if kind != "perceptual+mse":
        raise ValueError(f"unknown pti loss {kind!r} (resolve 'auto' first: resolve_pti_loss)")
    trunk = vgg()
    return lambda: Image2StyleGANLoss(
        trunk,
        layers=config.layers,
        layer_weights=config.layer_weights,
        mse_weight=config.mse_weight,
        perceptual_size=config.perceptual_size,
    )


@dataclass
class PTIState:
    """Everything needed to continue one tuning run exactly (its resume checkpoint)."""

    step: int  # steps done
    params: dict[str, torch.Tensor]  # synthesis parameter name -> tuned value
    exp_avg: dict[str, torch.Tensor]  # Adam moments by the same names ({} before step 1)
    exp_avg_sq: dict[str, torch.Tensor]
    rng: torch.Tensor  # the regulariser's z RNG
    history: torch.Tensor  # [step, 4] PTI_TERMS per step
    elapsed: float = 0.0

    def to_dict(self) -> dict:
        """Plain tensors and numbers, loadable with `torch.load(weights_only=True)`."""
        return {
            "step": self.step,
            "params": {k: v.cpu() for k, v in self.params.items()},
            "exp_avg": {k: v.cpu() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.cpu() for k, v in self.exp_avg_sq.items()},
            "rng": self.rng.cpu(),
            "history": self.history.cpu(),
            "elapsed": float(self.elapsed),
        }

    @staticmethod
    def from_dict(d: dict) -> PTIState:
        return PTIState(
            step=int(d["step"]),
            params=dict(d["params"]),
            exp_avg=dict(d["exp_avg"]),
            exp_avg_sq=dict(d["exp_avg_sq"]),
            rng=d["rng"],
            history=d["history"],
            elapsed=float(d.get("elapsed", 0.0)),
        )


class TuningRun:
    """One tuned copy of G's synthesis weights for one or more images (their pivots fixed)."""

    def __init__(
        self,
        tuner: PivotalTuner,
        pivots: torch.Tensor,  # [M, num_ws, w_dim]
        targets: torch.Tensor,  # [M, C, H, W] in [-1, 1], the generator's frame
        noise: Sequence[torch.Tensor] = (),  # [M, 1, h, w] per noise input; () = stored maps
        masks: torch.Tensor | None = None,  # [M, 1, H, W]: the pixels the pivot loss sees
        state: PTIState | None = None,  # resume from here
        seed: int = 0,
    ) -> None:
        self.tuner = tuner
        dev = tuner.device
        self.pivots = pivots.detach().to(dev, torch.float32)
        self.targets = targets.detach().to(dev, torch.float32)
        self.noise = [t.detach().to(dev, torch.float32) for t in noise]
        self.masks = None if masks is None else masks.to(dev, torch.float32)
        self.G = tuner.copy_generator()
        self.params = synthesis_parameters(self.G)
        for p in self.params.values():
            p.requires_grad_(True)
        cfg = tuner.config
        self.opt = torch.optim.Adam(self.params.values(), lr=cfg.pti_lr, fused=dev.type == "cuda")
        self.rng = torch.Generator(device="cpu")
        self.rng.manual_seed(seed)
        self.history: list[torch.Tensor] = []  # [4] per step, on the device (no host syncs)
        self.past = torch.zeros(0, len(PTI_TERMS))
        self.step_count = 0
        self.elapsed0 = 0.0
        self.t0 = time.perf_counter()
        self.pivot_loss = tuner.new_loss()  # the target cache is set once when it fits a step
        self.locality_loss = tuner.new_loss()
        self.cursor = 0  # next image of a minibatch cycle (shared runs larger than a step)
        if self.size <= tuner.step_batch:
            self.pivot_loss.set_target(self._masked(tuner.crop(self.targets), self.masks))
        if state is not None:
            self._restore(state)

    @property
    def size(self) -> int:
        return self.pivots.shape[0]

    @staticmethod
    def _masked(img: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        if masks is None:
            return img
        from .masks import apply_mask

        return apply_mask(img, masks)

    def _restore(self, state: PTIState) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(state.params[name].to(p.device))
        if state.exp_avg:
            dev = self.tuner.device
            fused = dev.type == "cuda"
            for name, p in self.params.items():
                self.opt.state[p] = {
                    "step": torch.tensor(float(state.step), device=dev if fused else "cpu"),
                    "exp_avg": state.exp_avg[name].to(dev).clone(),
                    "exp_avg_sq": state.exp_avg_sq[name].to(dev).clone(),
                }
        self.rng.set_state(state.rng)
        self.past = state.history.reshape(-1, len(PTI_TERMS)).float()
        self.step_count = state.step
        self.elapsed0 = state.elapsed

    def _rows(self) -> slice | torch.Tensor:
        """The images of this step: all of them, or the next minibatch of a cycle."""
        k = self.tuner.step_batch
        if self.size <= k:
            return slice(None)
        rows = torch.arange(self.cursor, self.cursor + k) % self.size
        self.cursor = (self.cursor + k) % self.size
        return rows

    def step(self) -> torch.Tensor:
        """One Adam step; returns the step's PTI_TERMS [4] (on the device)."""
        tuner, cfg = self.tuner, self.tuner.config
        rows = self._rows()
        pivots = self.pivots[rows]
        noise = [t[rows] for t in self.noise] or None
        img = tuner.crop(self.G.synthesis(pivots, noise=noise))
        if isinstance(rows, slice):
            terms = self.pivot_loss(self._masked(img, self.masks))
        else:
            masks = None if self.masks is None else self.masks[rows]
            target = self._masked(tuner.crop(self.targets[rows]), masks)
            terms = self.pivot_loss(self._masked(img, masks), target)
        pivot = terms["total"].mean()
        mse = terms["mse"].mean()
        locality = torch.zeros((), device=pivot.device)
        if cfg.pti_locality > 0:
            locality = self._locality(pivots[:1])
        total = pivot + cfg.pti_locality * locality
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        self.step_count += 1
        row = torch.stack([total, pivot, mse, locality]).detach()
        self.history.append(row)
        return row

    def _locality(self, pivot: torch.Tensor) -> torch.Tensor:
        """L_R at one code α away from `pivot` [1, num_ws, w_dim] towards a random mapped z."""
        tuner = self.tuner
        G = tuner.G
        z = torch.randn(1, G.z_dim, generator=self.rng).to(tuner.device)
        with torch.no_grad():
            w_z = G.mapping(z, truncation_psi=LOCALITY_PSI)
            w_r = locality_codes(pivot, w_z, tuner.locality_alpha)
            before = tuner.crop(G.synthesis(w_r, noise_mode="const"))
        after = tuner.crop(self.G.synthesis(w_r, noise_mode="const"))
        return self.locality_loss(after, before)["total"].mean()

    def state(self) -> PTIState:
        """The resume state now (one host sync: the history)."""
        adam = [self.opt.state.get(p, {}) for p in self.params.values()]
        moments = bool(adam) and "exp_avg" in adam[0]
        return PTIState(
            step=self.step_count,
            params={k: p.detach().cpu().clone() for k, p in self.params.items()},
            exp_avg={k: a["exp_avg"].cpu() for k, a in zip(self.params, adam, strict=True)}
            if moments
            else {},
            exp_avg_sq={k: a["exp_avg_sq"].cpu() for k, a in zip(self.params, adam, strict=True)}
            if moments
            else {},
            rng=self.rng.get_state(),
            history=self.full_history(),
            elapsed=self.elapsed,
        )

    def full_history(self) -> torch.Tensor:
        """[steps, 4] PTI_TERMS of every step done (earlier sessions included)."""
        now = torch.stack(self.history).cpu() if self.history else self.past[:0]
        return torch.cat([self.past, now])

    @property
    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        """G(w_p; θ*) of every image of the run (float32, CPU) -> [M, C, H, W]."""
        noise = self.noise or None
        out = [
            self.G.synthesis(self.pivots[k : k + 1], noise=[t[k : k + 1] for t in noise])
            if noise
            else self.G.synthesis(self.pivots[k : k + 1], noise_mode="const")
            for k in range(self.size)
        ]
        return torch.cat(out).cpu()

    def tuned_generator(self) -> Generator:
        """The tuned generator (a frozen CPU copy, eval mode), ready to save or render with."""
        out = copy.deepcopy(self.G).cpu().eval().requires_grad_(False)
        _drop_caches(out)
        out.source = self.tuner.G.source if hasattr(self.tuner.G, "source") else ""
        return out


class PivotalTuner:
    """The pivotal-tuning stage of one run: the original generator and the tuning settings."""

    def __init__(
        self,
        G: Generator,  # the original generator (frozen; never changed)
        config: EmbedConfig,  # pti_* fields (pti_loss "auto" is resolved here)
        vgg: Callable[[], VGG16Features],  # the run's VGG-16 (perceptual+mse loss)
        content_box: tuple[int, int, int, int] | None = None,  # the scored region of the frame
        step_batch: int = 8,  # images per step of a shared run (a minibatch cycle beyond it)
    ) -> None:
        if config.pti_steps <= 0:
            raise ValueError("pivotal tuning needs pti_steps > 0")
        self.G = G
        self.config = resolve_pti_loss(config)
        self.device = G.w_avg.device
        self.content_box = content_box
        self.step_batch = max(1, int(step_batch))
        self.new_loss = loss_factory(self.config, G.img_resolution, vgg, self.device)

    @property
    def steps(self) -> int:
        return self.config.pti_steps

    @property
    def locality_alpha(self) -> float:
        """The regulariser's distance in this generator's W: pti_locality_alpha is the paper's
        distance in a 512-dimensional W (every official model), scaled by sqrt(w_dim / 512) for
        other widths so that it probes the same neighbourhood of the pivot relative to the
        spread of W (a 30 in a 24-dimensional W lies far outside every code it can map)."""
        return self.config.pti_locality_alpha * math.sqrt(self.G.w_dim / REFERENCE_W_DIM)

    def crop(self, img: torch.Tensor) -> torch.Tensor:
        if self.content_box is None:
            return img
        x0, y0, x1, y1 = self.content_box
        return img[..., y0:y1, x0:x1]

    def copy_generator(self) -> Generator:
        """A float32 copy of G whose weights can be tuned (G's caches left behind)."""
        G = self.G
        caches = [(m, m.__dict__.pop("_frozen")) for m in G.modules() if "_frozen" in m.__dict__]
        try:
            out = copy.deepcopy(G)
        finally:
            for m, cache in caches:
                m.__dict__["_frozen"] = cache
        return out.float().train(False)

    def record(self) -> dict[str, object]:
        """The settings a latent file records under "pti"."""
        cfg = self.config
        return {
            "steps": cfg.pti_steps,
            "lr": cfg.pti_lr,
            "loss": cfg.pti_loss,
            "l2_weight": cfg.pti_l2_weight,
            "locality": cfg.pti_locality,
            "locality_alpha": cfg.pti_locality_alpha,
            "locality_distance": self.locality_alpha,  # in this generator's W
            "locality_psi": LOCALITY_PSI,
            "shared": cfg.pti_shared,
        }


def _drop_caches(G: nn.Module) -> None:
    for m in G.modules():
        m.__dict__.pop("_frozen", None)


def final_terms(history: torch.Tensor) -> dict[str, float]:
    """The last step's PTI_TERMS of a [steps, 4] history ({} for no steps)."""
    if history.numel() == 0:
        return {}
    last = history.reshape(-1, len(PTI_TERMS))[-1]
    return {k: float(v) for k, v in zip(PTI_TERMS, last, strict=True) if math.isfinite(float(v))}
