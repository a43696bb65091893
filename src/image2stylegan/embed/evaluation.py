"""The reconstruction metrics every embedding records (`metrics` in its latent metadata, a row of
the run's metrics.csv): PSNR, SSIM, MSE, and LPIPS / identity when their models are here.

`ReconstructionMetric` is the runner's `Metric` the embed pipeline adds by default. It measures
the 8-bit images exactly as target.png and reconstruction.png hold them (`metrics` module), on
the valid region of a non-square generator and, for a masked embedding, on the mask's pixels,
so the recorded PSNR is PSNR(target.png, reconstruction.png) (over mask.png).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..metrics import FaceIdentity, LPIPSMetric, reconstruction_metrics
from .embedder import EmbedResult

__all__ = ["ReconstructionMetric"]


@dataclass
class ReconstructionMetric:
    """PSNR, SSIM, MSE (+ LPIPS, ID) of a finished image against its target (`metrics`)."""

    content_box: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) valid region
    lpips: LPIPSMetric | None = None  # None: no "lpips" (unless `auto` finds its weights)
    identity: FaceIdentity | None = None  # None: no "id" (faces only even when given)
    auto: bool = False  # on first use, load LPIPS and dlib's face models when they are here
    device: str | torch.device = "cpu"  # where LPIPS runs

    def __call__(
        self, result: EmbedResult, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Mapping[str, float]:
        if self.auto:
            from ..metrics import load_face_identity, load_lpips_metric

            self.auto = False
            self.lpips = self.lpips or load_lpips_metric(self.device)
            self.identity = self.identity or load_face_identity()
        recon = result.images[:1]  # [1, 3, H, W]
        target = target[:1]
        if self.content_box is not None:
            x0, y0, x1, y1 = self.content_box
            recon, target = recon[..., y0:y1, x0:x1], target[..., y0:y1, x0:x1]
            mask = None if mask is None else mask[..., y0:y1, x0:x1]
        return reconstruction_metrics(
            target,
            recon,
            mask=None if mask is None else mask[0, 0],
            lpips=self.lpips,
            identity=self.identity,
        )
