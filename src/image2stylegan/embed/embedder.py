"""Algorithm 1 (Sec. 5): optimise a latent code so that G(w*) reproduces a target image.

`Embedder.iterate` is the one step loop the CLI, the web UI and the experiments all drive. It
is batched: N targets share one latent tensor [N, ...], the loss is per image and summed, and
Adam is elementwise, so each image's optimisation is independent of the batch it is in. Random
draws (random init, resampled noise, NVIDIA-preset latent noise) come from one RNG per image,
seeded with `config.seed`, so an image's result depends only on the image and the seed.

The loop never syncs with the host except when it yields a report (every `report_every` steps).
"""

from __future__ import annotations

import collections.abc
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import I2SError
from ..models.base import Generator
from .config import EmbedConfig

__all__ = ["EmbedResult", "EmbedState", "Embedder", "StepReport", "TargetLoss", "sampled_w_stats"]


class TargetLoss(Protocol):
    """A per-image loss against cached targets: `set_target(t)` once, then `loss(img)` per step."""

    def set_target(self, target: torch.Tensor) -> None: ...

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """img [N, C, H, W] -> terms, each [N]; must include "total"."""
        ...


@dataclass
class EmbedState:
    """Everything needed to continue an optimisation exactly (a resume checkpoint).

    Batched tensors have the batch in dim 0, so `split` / `merge` move between per-image
    checkpoints and batches (images merged into a batch must be at the same step).
    """

    step: int  # steps done
    latent: torch.Tensor  # [N, ...] the optimised variable (z, w or w+)
    exp_avg: list[torch.Tensor]  # Adam first moments, one per optimised tensor
    exp_avg_sq: list[torch.Tensor]  # Adam second moments
    noise: list[torch.Tensor]  # [N, 1, h, w] per noise input (restart/optimised), or []
    rng: list[torch.Tensor]  # one RNG state per image
    history: torch.Tensor  # [step, N, 3] (total, perceptual, mse) per step
    elapsed: float = 0.0  # seconds spent so far
    adam_step: int = -1  # Adam's own step count (< step when fp16 skipped steps); -1 = step

    def __post_init__(self) -> None:
        if self.adam_step < 0:
            self.adam_step = self.step

    @property
    def batch_size(self) -> int:
        return self.latent.shape[0]

    def split(self) -> list[EmbedState]:
        rows = range(self.batch_size)
        return [
            EmbedState(
                step=self.step,
                latent=self.latent[i : i + 1].clone(),
                exp_avg=[t[i : i + 1].clone() for t in self.exp_avg],
                exp_avg_sq=[t[i : i + 1].clone() for t in self.exp_avg_sq],
                noise=[t[i : i + 1].clone() for t in self.noise],
                rng=[self.rng[i]],
                history=self.history[:, i : i + 1].clone(),
                elapsed=self.elapsed,
                adam_step=self.adam_step,
            )
            for i in rows
        ]

    @staticmethod
    def merge(states: Sequence[EmbedState]) -> EmbedState:
        steps = {(s.step, s.adam_step) for s in states}
        if len(steps) != 1:
            raise ValueError(f"cannot batch states at different steps {sorted(steps)}")
        return EmbedState(
            step=states[0].step,
            latent=torch.cat([s.latent for s in states]),
            exp_avg=[torch.cat(ts) for ts in zip(*(s.exp_avg for s in states), strict=True)],
            exp_avg_sq=[torch.cat(ts) for ts in zip(*(s.exp_avg_sq for s in states), strict=True)],
            noise=[torch.cat(ts) for ts in zip(*(s.noise for s in states), strict=True)],
            rng=[r for s in states for r in s.rng],
            history=torch.cat([s.history for s in states], dim=1),
            elapsed=max(s.elapsed for s in states),
            adam_step=states[0].adam_step,
        )

    def to_dict(self) -> dict:
        """Plain tensors/ints/lists, loadable with `torch.load(weights_only=True)`."""
        return {
            "step": self.step,
            "latent": self.latent.cpu(),
            "exp_avg": [t.cpu() for t in self.exp_avg],
            "exp_avg_sq": [t.cpu() for t in self.exp_avg_sq],
            "noise": [t.cpu() for t in self.noise],
            "rng": [r.cpu() for r in self.rng],
            "history": self.history.cpu(),
            "elapsed": float(self.elapsed),
            "adam_step": int(self.adam_step),
        }

    @staticmethod
    def from_dict(d: dict) -> EmbedState:
        return EmbedState(
            step=int(d["step"]),
            latent=d["latent"],
            exp_avg=list(d["exp_avg"]),
            exp_avg_sq=list(d["exp_avg_sq"]),
            noise=list(d["noise"]),
            rng=list(d["rng"]),
            history=d["history"],
            elapsed=float(d.get("elapsed", 0.0)),
            adam_step=int(d.get("adam_step", -1)),
        )


@dataclass
class StepReport:
    """The loop's state at a report point (every `report_every` steps and at the end)."""

    step: int  # steps done so far
    steps: int  # total steps
    losses: torch.Tensor  # [N, 3] (total, perceptual, mse) of the last step, on the device
    images: torch.Tensor  # [N, C, H, W] the synthesised images of the last step (detached)
    ws: torch.Tensor  # [N, num_ws, w_dim] the codes that made them (detached)
    elapsed: float  # seconds
    state: Callable[[], EmbedState] = field(repr=False)  # the resume state at this point
    phase: str = "w"  # "w": the latent steps; "noise": the Image2StyleGAN++ noise stage


@dataclass
class EmbedResult:
    """The outcome of a finished optimisation."""

    ws: torch.Tensor  # [N, num_ws, w_dim] w* (W+ codes, also for the W / Z spaces)
    images: torch.Tensor  # [N, C, H, W] G(w*) with the noise used in the optimisation
    losses: dict[str, torch.Tensor]  # final terms of G(w*) (one more evaluation), each [N]
    history: torch.Tensor  # [steps, N, 3] (total, perceptual, mse) per step
    elapsed: float
    z: torch.Tensor | None = None  # [N, z_dim] for space="z"
    w_single: torch.Tensor | None = None  # [N, w_dim] for space="w"
    noise: list[torch.Tensor] = field(default_factory=list)  # [N, 1, h, w] per noise input
    # when they are not the stored constants (noise stage, restart), else []


def sampled_w_stats(
    G: Generator, num_samples: int = 10_000, seed: int = 123456, batch: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """w̄ [w_dim] and the scalar w std from mapped samples, as NVIDIA's projector computes them
    (z from np.random.RandomState(123456), std = sqrt(sum ||w - w̄||² / num_samples))."""
    device = G.w_avg.device
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_samples, G.z_dim)).float()
    with torch.no_grad():
        w = torch.cat([G.map_z(z[i : i + batch].to(device)) for i in range(0, num_samples, batch)])
    w = w.double()
    w_avg = w.mean(0)
    w_std = ((w - w_avg).square().sum() / num_samples).sqrt()
    return w_avg.float(), w_std.float()


class Embedder:
    """Runs Algorithm 1 for a generator, a loss and an `EmbedConfig`, followed by the
    Image2StyleGAN++ noise stage when `config.noise_steps` > 0 (one loop, two phases)."""

    def __init__(
        self,
        G: Generator,  # frozen generator (load_generator returns it in eval mode)
        loss_fn: TargetLoss,  # per-image loss against a cached target
        config: EmbedConfig = EmbedConfig(),  # noqa: B008 - frozen dataclass
        content_box: tuple[int, int, int, int] | None = None,  # (x0, y0, x1, y1) scored region
        noise_loss_fn: TargetLoss | None = None,  # loss of the noise stage; None = from config
    ) -> None:
        self.G = G
        self.loss_fn = loss_fn
        self.config = config
        self.content_box = content_box
        self.device = G.w_avg.device
        if config.optimizes_noise and not G.noise_buffers():
            raise I2SError(
                f"{getattr(G, 'source', '') or 'this generator'} has no noise inputs (a StyleGAN3 "
                "or a network built without noise), so there are no noise maps to optimise; "
                "drop --noise-steps (and noise optimisation)"
            )
        if config.w_rows is not None and config.w_rows[1] > G.num_ws:
            raise ValueError(
                f"w_rows {list(config.w_rows)} is beyond the generator's {G.num_ws} W+ rows"
            )
        self.noise_loss_fn = noise_loss_fn or self._default_noise_loss()
        self.w_avg, self.w_std = G.w_avg.detach().clone(), torch.tensor(0.0)
        if config.w_stats == "sampled" or config.w_noise_factor > 0:
            sampled_avg, self.w_std = sampled_w_stats(G)
            if config.w_stats == "sampled":
                self.w_avg = sampled_avg
        self._forward = self._forward_eager
        if config.compile:
            self._forward = torch.compile(self._forward_eager, dynamic=False)

    def _default_noise_loss(self) -> TargetLoss:
        """Mk_n of Image2StyleGAN++ (Sec. 6.2): the pixel MSE only (lambda_p = 0); or the W+
        stage's loss itself for noise_loss="perceptual+mse" (when that is what it computes)."""
        cfg = self.config
        if cfg.noise_loss == "mse":
            from ..losses import Image2StyleGANLoss

            return Image2StyleGANLoss(None, layers=(), mse_weight=1.0)
        if cfg.noise_steps and not {"perceptual", "mse"} <= set(cfg.loss_terms):
            raise ValueError(
                f"noise loss perceptual+mse needs its loss passed in when the W+ loss is "
                f"{cfg.loss!r} (build_embedder / EmbedPipeline.embedder do)"
            )
        return self.loss_fn

    # --- setup -----------------------------------------------------------------------------

    def _rngs(self, n: int) -> list[torch.Generator]:
        gens = []
        for _ in range(n):
            g = torch.Generator(device="cpu")
            g.manual_seed(self.config.seed)
            gens.append(g)
        return gens

    def _initial_latent(
        self, n: int, rngs: list[torch.Generator], init: torch.Tensor | None
    ) -> torch.Tensor:
        """Start of the variable: [N, num_ws, w_dim] (w+), [N, 1, w_dim] (w) or [N, z_dim] (z)."""
        cfg, G = self.config, self.G
        shape = {
            "w+": (G.num_ws, G.w_dim),
            "w": (1, G.w_dim),
            "z": (G.z_dim,),
        }[cfg.space]
        if init is not None:
            return self._latent_from_tensor(init, n, shape)
        if cfg.init == "mean":
            if cfg.space == "z":
                return torch.zeros((n, *shape))  # the centre of N(0, I); maps to G.mapping(0)
            return self.w_avg.detach().cpu().expand(n, *shape).clone()
        if cfg.init == "random":  # Sec. 5.1: each variable independently from U[-1, 1]
            return torch.stack([torch.rand(shape, generator=g) * 2 - 1 for g in rngs])
        raise ValueError(f"init must be 'mean', 'random' or a latent tensor, got {cfg.init!r}")

    def _latent_from_tensor(
        self, init: torch.Tensor, n: int, shape: tuple[int, ...]
    ) -> torch.Tensor:
        init = init.detach().float().cpu()
        space = self.config.space
        if space == "z":
            if init.shape[-1] != self.G.z_dim:
                raise ValueError("space z needs a z code to start from (the latent file has none)")
            init = init.reshape(-1, self.G.z_dim)
        else:
            if init.ndim == 2:
                init = init.unsqueeze(0)
            if init.shape[-2:] != (self.G.num_ws, self.G.w_dim):
                raise ValueError(
                    f"init latent is {list(init.shape)}, the generator takes "
                    f"[N, {self.G.num_ws}, {self.G.w_dim}]"
                )
            if space == "w":
                init = init.mean(dim=1, keepdim=True)
        if init.shape[0] == 1:
            init = init.expand(n, *shape)
        if init.shape[0] != n:
            raise ValueError(f"init has {init.shape[0]} codes for {n} images")
        return init.clone()

    def _initial_noise(self, n: int, rngs: list[torch.Generator]) -> list[torch.Tensor]:
        """Per-image noise maps when they are not the stored constants ([] = stored buffers).

        Jointly optimised noise (NVIDIA's) starts from N(0, 1) draws; Image2StyleGAN++'s joint
        variant from the stored constants, like its noise stage (`_stage_noise`)."""
        cfg = self.config
        if cfg.noise_joint and cfg.noise != "restart":
            return self._stored_noise(n)
        if not (cfg.noise == "restart" or cfg.optimize_noise):
            return []
        shapes = [b.shape[2:] for b in self.G.noise_buffers()]
        per_image = [[torch.randn((1, 1, *s), generator=g) for s in shapes] for g in rngs]
        return [torch.cat(maps) for maps in zip(*per_image, strict=True)]

    def _stored_noise(self, n: int) -> list[torch.Tensor]:
        """The stored constant noise, one copy per image: [N, 1, h, w] per noise input (CPU)."""
        return [
            b.detach().float().cpu().expand(n, -1, -1, -1).clone() for b in self.G.noise_buffers()
        ]

    def _loss(self, loss: TargetLoss, masks: torch.Tensor | None) -> TargetLoss:
        """`loss` on the masked images (Image2StyleGAN++ Eq. 1) when there are masks."""
        if masks is None:
            return loss
        from .masks import MaskedLoss

        return MaskedLoss(loss, self._crop(masks.to(self.device)))

    # --- the step ---------------------------------------------------------------------------

    def _ws(self, latent: torch.Tensor) -> torch.Tensor:
        """The variable -> W+ codes [N, num_ws, w_dim]."""
        G = self.G
        if self.config.space == "z":
            return G.mapping(latent)
        return latent.expand(-1, G.num_ws, -1) if self.config.space == "w" else latent

    def _crop(self, img: torch.Tensor) -> torch.Tensor:
        if self.content_box is None:
            return img
        x0, y0, x1, y1 = self.content_box
        return img[..., y0:y1, x0:x1]

    def _forward_eager(
        self,
        latent: torch.Tensor,
        noise: list[torch.Tensor],
        latent_noise: torch.Tensor | None,
        loss_fn: TargetLoss,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        var = latent if latent_noise is None else latent + latent_noise
        ws = self._ws(var)
        with self._autocast():
            img = self.G.synthesis(ws, noise=noise or None)
            terms = loss_fn(self._crop(img))
        terms = {k: v.float() for k, v in terms.items()}
        if self.config.noise_regularize_weight > 0 and noise:
            reg = noise_regularization(noise)
            terms["noise_reg"] = reg
            terms["total"] = terms["total"] + self.config.noise_regularize_weight * reg
        return img, terms, ws

    def _autocast(self) -> contextlib.AbstractContextManager:
        p = self.config.precision
        if p == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if p == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _lr(self, step: int) -> float:
        """NVIDIA's schedule when ramps are set (cosine ramp-down, linear warm-up), else flat."""
        cfg = self.config
        t = step / max(cfg.steps, 1)
        ramp = 1.0
        if cfg.lr_rampdown > 0:
            ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
            ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        if cfg.lr_rampup > 0:
            ramp = ramp * min(1.0, t / cfg.lr_rampup)
        return cfg.lr * ramp

    def _latent_noise_scale(self, step: int) -> float:
        cfg = self.config
        if cfg.w_noise_factor <= 0:
            return 0.0
        t = step / max(cfg.steps, 1)
        return float(self.w_std) * cfg.w_noise_factor * max(0.0, 1.0 - t / cfg.w_noise_ramp) ** 2

    # --- the loop ---------------------------------------------------------------------------

    def iterate(
        self,
        targets: torch.Tensor,  # [N, C, H, W] in [-1, 1], the generator's frame size
        init: torch.Tensor | None = None,  # start codes (e.g. from a latent file)
        state: EmbedState | None = None,  # resume from here
        report_every: int = 50,
        stop_after: int | None = None,  # stop (with a final report) once this many steps are done
        masks: torch.Tensor | None = None,  # [N, 1, H, W] in [0, 1]: pixels each loss sees
    ) -> collections.abc.Generator[StepReport, None, None]:
        """Run the optimisation, yielding a `StepReport` every `report_every` steps and at the end.

        Steps 0 .. config.steps - 1 optimise the latent (Algorithm 1); with config.noise_steps
        the following steps optimise only the noise maps with the latent frozen (Image2StyleGAN++
        Sec. 4.2: sequentially, never jointly), with their own Adam (lr config.noise_lr) and loss.
        The last report's `state()` resumes exactly (same numbers as an uninterrupted run), in
        either phase.
        """
        cfg, G, dev = self.config, self.G, self.device
        n = targets.shape[0]
        crop = self._crop(targets.to(dev))
        loss_w = self._loss(self.loss_fn, masks)
        loss_w.set_target(crop)
        loss_n = self._loss(self.noise_loss_fn, masks) if cfg.noise_steps else loss_w
        if loss_n is not loss_w:
            loss_n.set_target(crop)
        total_steps = cfg.latent_steps  # the latent and noise steps; pivotal tuning follows

        if state is None:
            rngs = self._rngs(n)
            latent = self._initial_latent(n, rngs, init)
            noise = self._initial_noise(n, rngs)
            history = torch.zeros(0, n, 3)
            start, elapsed0 = 0, 0.0
        else:
            if state.batch_size != n:
                raise ValueError(f"resume state holds {state.batch_size} images, got {n} targets")
            rngs = []
            for s in state.rng:
                g = torch.Generator(device="cpu")
                g.set_state(s)
                rngs.append(g)
            latent, noise, history = state.latent, state.noise, state.history
            start, elapsed0 = state.step, state.elapsed

        latent = latent.to(dev)
        noise = [t.to(dev) for t in noise]
        # On CUDA the fused Adam kernel (one launch for all tensors); same update rule.
        fused = dev.type == "cuda"
        opt: torch.optim.Adam | None = None
        params: list[torch.Tensor] = []
        phase = ""

        def begin(new_phase: str, resume: EmbedState | None) -> None:
            """Set up the optimiser of a phase ("w": the latent, "noise": the noise stage)."""
            nonlocal opt, params, phase, noise
            phase = new_phase
            if phase == "noise":
                latent.requires_grad_(False)  # W+ frozen (Sec. 4.2)
                if not noise:  # the stored constants the W+ steps used, one copy per image
                    noise = [t.to(dev) for t in self._stored_noise(n)]
                noise = [t.detach().requires_grad_(True) for t in noise]
                params = list(noise)
                groups: list[dict] = [{"params": params, "lr": cfg.noise_lr}]
            else:
                latent.requires_grad_(True)
                if cfg.w_rows is not None:  # the other rows stay as they start (zero gradient,
                    rows = torch.zeros(G.num_ws, 1, device=dev)  # so Adam moves them by 0)
                    rows[cfg.w_rows[0] : cfg.w_rows[1]] = 1.0
                    latent.register_hook(lambda g: g * rows)
                joint = cfg.optimize_noise or cfg.noise_joint
                noise = [t.detach().requires_grad_(joint) for t in noise]
                params = [latent] + (noise if joint else [])
                groups = [{"params": [latent], "lr": cfg.lr}]
                if joint:  # NVIDIA: one lr for both; Image2StyleGAN++'s joint: noise_lr
                    lr = cfg.noise_lr if cfg.noise_joint else cfg.lr
                    groups.append({"params": noise, "lr": lr, "noise": True})
            opt = torch.optim.Adam(groups, betas=cfg.betas, eps=cfg.eps, fused=fused)
            if resume is not None and resume.adam_step > 0:
                for p, m, v in zip(params, resume.exp_avg, resume.exp_avg_sq, strict=True):
                    opt.state[p] = {
                        "step": torch.tensor(
                            float(resume.adam_step), device=dev if fused else "cpu"
                        ),
                        "exp_avg": m.to(dev).clone(),
                        "exp_avg_sq": v.to(dev).clone(),
                    }

        # a state taken at the end of the W+ steps holds the W+ optimiser: the noise stage starts
        # fresh; one taken inside the noise stage holds the noise stage's optimiser
        in_noise = cfg.noise_steps > 0 and start >= cfg.steps
        begin("noise" if in_noise else "w", state if (not in_noise or start > cfg.steps) else None)
        # fp16 loss scaling; Eq. 1 on the 0-255 scale is large (1e3-1e5), so start unscaled
        # (the default 2^16 overflows for the first ~15 steps) and let the scaler adapt.
        scaler = torch.amp.GradScaler(dev.type, init_scale=1.0) if cfg.precision == "fp16" else None
        resample = cfg.noise == "resample"
        noise_shapes = [b.shape[2:] for b in G.noise_buffers()]
        log = torch.zeros(max(total_steps - start, 0), n, 3, device=dev)
        end = total_steps if stop_after is None else min(total_steps, stop_after)
        t0 = time.perf_counter()

        def snapshot(done: int) -> Callable[[], EmbedState]:
            """Freeze the state after `done` steps now (device-side copies, no host sync);
            the returned function turns it into an `EmbedState` on the CPU when called."""
            assert opt is not None
            adam = [opt.state[p] for p in params]
            frozen = EmbedState(  # on the device; `history` holds this run's steps only
                step=done,
                latent=latent.detach().clone(),
                exp_avg=[
                    a.get("exp_avg", torch.zeros_like(p)).clone()
                    for a, p in zip(adam, params, strict=True)
                ],
                exp_avg_sq=[
                    a.get("exp_avg_sq", torch.zeros_like(p)).clone()
                    for a, p in zip(adam, params, strict=True)
                ],
                noise=[t.detach().clone() for t in noise],
                rng=[g.get_state() for g in rngs],
                history=log[: done - start].clone(),
                elapsed=elapsed0 + time.perf_counter() - t0,
                # no Adam state yet: before the first step (or fp16 steps skipped for overflow)
                adam_step=int(adam[0]["step"]) if "step" in adam[0] else 0,
            )

            def materialise() -> EmbedState:
                return EmbedState(
                    step=done,
                    latent=frozen.latent.cpu(),
                    exp_avg=[t.cpu() for t in frozen.exp_avg],
                    exp_avg_sq=[t.cpu() for t in frozen.exp_avg_sq],
                    noise=[t.cpu() for t in frozen.noise],
                    rng=frozen.rng,
                    history=torch.cat([history, frozen.history.cpu()]),
                    elapsed=frozen.elapsed,
                    adam_step=frozen.adam_step,
                )

            return materialise

        img = ws = None
        zero = torch.zeros(n, device=dev)
        last_terms = torch.zeros(n, 3, device=dev)
        for step in range(start, end):
            if phase == "w" and step >= cfg.steps:  # the W+ steps are done: the noise stage
                begin("noise", None)
            assert opt is not None
            if phase == "w":
                for group in opt.param_groups:
                    if not group.get("noise") or not cfg.noise_joint:
                        group["lr"] = self._lr(step)
            step_noise = noise
            if resample and phase == "w":
                step_noise = [
                    torch.cat([torch.randn((1, 1, *s), generator=g) for g in rngs]).to(dev)
                    for s in noise_shapes
                ]
            latent_noise = None
            scale = self._latent_noise_scale(step) if phase == "w" else 0.0
            if scale > 0:
                latent_noise = (
                    torch.stack([torch.randn(latent.shape[1:], generator=g) for g in rngs]).to(dev)
                    * scale
                )
            loss_fn = loss_w if phase == "w" else loss_n
            img, terms, ws = self._forward(latent, list(step_noise), latent_noise, loss_fn)
            opt.zero_grad(set_to_none=True)
            total = terms["total"].sum()  # sum, not mean: per-image gradients, batch-invariant
            if scaler is None:
                total.backward()
                opt.step()
            else:  # fp16: scale the loss so small gradients survive the half-precision backward
                scaler.scale(total).backward()
                scaler.step(opt)  # skips the step (and syncs) when a gradient overflowed
                scaler.update()
            if cfg.optimize_noise:
                with torch.no_grad():  # NVIDIA: renormalise each noise map to zero mean, unit std
                    for t in noise:
                        t -= t.mean(dim=(1, 2, 3), keepdim=True)
                        t *= t.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
            last_terms = torch.stack(
                [terms["total"], terms.get("perceptual", zero), terms.get("mse", zero)],
                dim=1,
            ).detach()
            log[step - start] = last_terms
            done = step + 1
            if done % report_every == 0 or done == end:
                yield StepReport(
                    step=done,
                    steps=cfg.total_steps,
                    losses=last_terms,
                    images=img.detach(),
                    ws=ws.detach(),
                    elapsed=elapsed0 + time.perf_counter() - t0,
                    state=snapshot(done),
                    phase=phase,
                )
        if start >= end:  # nothing to do (already finished): report the given state
            yield StepReport(
                step=start,
                steps=cfg.total_steps,
                losses=last_terms,
                images=torch.empty(0),
                ws=self._ws(latent.detach()).detach(),
                elapsed=elapsed0,
                state=snapshot(start),
                phase=phase,
            )

    def run(
        self,
        targets: torch.Tensor,
        init: torch.Tensor | None = None,
        state: EmbedState | None = None,
        callback: Callable[[StepReport], None] | None = None,
        report_every: int = 50,
        masks: torch.Tensor | None = None,
    ) -> EmbedResult:
        """Run to the end and evaluate G(w*) once more for the final loss terms."""
        last = None
        for report in self.iterate(
            targets, init=init, state=state, report_every=report_every, masks=masks
        ):
            last = report
            if callback is not None:
                callback(report)
        assert last is not None
        return self.finish(targets, last.state(), masks=masks)

    @torch.no_grad()
    def finish(
        self, targets: torch.Tensor, state: EmbedState, masks: torch.Tensor | None = None
    ) -> EmbedResult:
        """Final codes, image and loss terms of a (finished) state; the terms are the W+ stage's
        loss (Eq. 1 by default) of G(w*, n*), so runs with and without a noise stage compare."""
        dev = self.device
        loss_fn = self._loss(self.loss_fn, masks)
        loss_fn.set_target(self._crop(targets.to(dev)))
        latent = state.latent.to(dev)
        noise = [t.to(dev) for t in state.noise]
        img, terms, ws = self._forward_eager(latent, noise, None, loss_fn)
        z = latent.cpu() if self.config.space == "z" else None
        w_single = latent[:, 0].cpu() if self.config.space == "w" else None
        return EmbedResult(
            ws=ws.detach().cpu(),
            images=img.detach().cpu(),
            losses={k: v.detach().cpu() for k, v in terms.items()},
            history=state.history,
            elapsed=state.elapsed,
            z=z,
            w_single=w_single,
            noise=[t.cpu() for t in state.noise],
        )


def noise_regularization(noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """NVIDIA's noise-map penalty, per image: squared spatial autocorrelation at lag 1 (x and y)
    over a pyramid of 2x average-pooled maps down to 8 x 8. Returns [N]."""
    reg = torch.zeros(noise[0].shape[0], device=noise[0].device)
    for t in noise:
        t = t.float()
        while True:
            reg = reg + (t * torch.roll(t, shifts=1, dims=3)).mean(dim=(1, 2, 3)).square()
            reg = reg + (t * torch.roll(t, shifts=1, dims=2)).mean(dim=(1, 2, 3)).square()
            if t.shape[2] <= 8:
                break
            t = F.avg_pool2d(t, kernel_size=2)
    return reg
