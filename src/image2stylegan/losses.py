"""The embedding loss of Image2StyleGAN (Sec. 5.2, Eq. 1 and 2), and LPIPS (VGG) as an extra term.

Eq. 1:  L(I, G(w)) = L_percept(G(w), I) + (lambda_mse / N) * ||G(w) - I||^2
Eq. 2:  L_percept(I1, I2) = sum_j (lambda_j / N_j) * ||F_j(I1) - F_j(I2)||^2

with F_j the post-ReLU VGG-16 features at conv1_1, conv1_2, conv3_2, conv4_2, N_j the number of
scalars of one image's feature map (C_j * H_j * W_j) and N that of one image (3 * H * W): each
term is a mean over one image's scalars, computed per image. Following SPEC section 5:
- the perceptual term sees both images resized to `perceptual_size` (256: the paper embeds 1024 px
  faces but measures VGG features at 256 x 256; antialiased bilinear), the MSE the full images;
- both terms live on the 0-255 pixel scale: the MSE compares (x + 1) * 127.5, and the default
  Caffe VGG takes 0-255 input (its module maps [-1, 1] to it). With torchvision weights the
  features follow torchvision's normalised input, so values are not comparable with the paper's
  Tables 1-3.
All reductions run in float32 (or float64 for float64 inputs), so the loss is safe under CUDA
autocast: the convolutions may run in bf16/fp16, the squared differences and means do not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models.vgg16 import (
    DEFAULT_LAYERS,
    ChannelAffine,
    VGG16Features,
    canonical_layer_name,
    input_transform,
)

__all__ = [
    "LPIPS",
    "LPIPS_LAYERS",
    "Image2StyleGANLoss",
    "load_lpips",
    "mse_loss",
    "perceptual_loss",
    "resize_for_perceptual",
]

LPIPS_LAYERS: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")  # relu*_*
_PIXEL_SCALE = 127.5  # [-1, 1] -> [0, 255]: (x + 1) * 127.5
Size = int | tuple[int, int] | None


def _wide(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (keeps float64): where the reductions run."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def mse_loss(
    img: torch.Tensor,  # [N, C, H, W] in [-1, 1]
    target: torch.Tensor,  # [N or 1, C, H, W] in [-1, 1]
) -> torch.Tensor:
    """(1 / N) * ||I - G(w)||^2 per image on the 0-255 scale (Eq. 1's pixel term, unweighted)."""
    d = (_wide(img) - _wide(target)) * _PIXEL_SCALE  # [N, C, H, W]
    return d.square().mean(dim=(1, 2, 3))  # [N]


def perceptual_loss(
    feats: dict[str, torch.Tensor],  # name -> [N, C_j, H_j, W_j]
    target_feats: dict[str, torch.Tensor],  # name -> [N or 1, C_j, H_j, W_j]
    layer_weights: dict[str, float],  # lambda_j
) -> torch.Tensor:
    """Eq. 2 per image: sum_j (lambda_j / N_j) * ||F_j(I1) - F_j(I2)||^2 -> [N]."""
    total: torch.Tensor | None = None
    for name, weight in layer_weights.items():
        d = _wide(feats[name]) - _wide(target_feats[name])  # [N, C_j, H_j, W_j]
        term = weight * d.square().mean(dim=(1, 2, 3))  # mean = 1/N_j * sum
        total = term if total is None else total + term
    if total is None:
        raise ValueError("perceptual_loss needs at least one layer")
    return total


def resize_for_perceptual(img: torch.Tensor, size: Size) -> torch.Tensor:
    """Resize to the perceptual resolution: antialiased bilinear (Sec. 5.2 measures at 256).

    `size` int: square images go to size x size (the paper's case); other aspect ratios keep it,
    with the longer side = size. (h, w): exactly that. None: untouched (full resolution).
    """
    if size is None:
        return img
    H, W = img.shape[-2:]
    if isinstance(size, int):
        scale = size / max(H, W)
        out = (max(1, round(H * scale)), max(1, round(W * scale)))
    else:
        out = (int(size[0]), int(size[1]))
    if out == (H, W):
        return img
    return F.interpolate(img, size=out, mode="bilinear", align_corners=False, antialias=True)


class LPIPS(nn.Module):
    """LPIPS v0.1, VGG variant (Zhang et al., CVPR 2018), on our VGG-16 with torchvision weights.

    d(x0, x1) = sum_k mean_{h,w} sum_c w_kc * (f0_khwc - f1_khwc)^2, where f are the relu1_2,
    relu2_2, relu3_3, relu4_3, relu5_3 features of LPIPS's scaled input ((x - shift) / scale, x in
    [-1, 1]), each unit-normalised over channels (f / (||f||_2 + 1e-10)), and w_k >= 0 the
    learned 1x1 linear weights. Returns one distance per image, [N].
    """

    def __init__(
        self,
        vgg: VGG16Features,  # the trunk; its own preprocessing is bypassed (LPIPS scales inputs)
        lin_weights: Sequence[torch.Tensor],  # five vectors [C_k] (or [1, C_k, 1, 1])
    ) -> None:
        super().__init__()
        if vgg.preprocessing == "caffe":
            raise ValueError(
                "LPIPS's linear layers were calibrated on torchvision's VGG-16; load the trunk "
                "from vgg16-torchvision, not the Caffe weights"
            )
        if len(lin_weights) != len(LPIPS_LAYERS):
            raise ValueError(f"LPIPS (VGG) needs 5 linear layers, got {len(lin_weights)}")
        self.vgg = vgg
        self.source: str = "untrained"
        self._scaling = ChannelAffine(*input_transform("lpips"))  # LPIPS's ScalingLayer
        for k, (name, w) in enumerate(zip(LPIPS_LAYERS, lin_weights, strict=True)):
            channels = getattr(vgg, name).out_channels
            w = w.detach().reshape(-1).float()
            if w.numel() != channels:
                raise ValueError(
                    f"LPIPS lin{k} has {w.numel()} weights, {name} {channels} channels"
                )
            self.register_buffer(f"lin{k}", w)  # [C_k]
        self.requires_grad_(False)
        self.eval()

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """[N, 3, H, W] in [-1, 1] -> five unit-normalised feature maps (float32 or wider)."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"LPIPS expects RGB images [N, 3, H, W], got {tuple(img.shape)}")
        raw = self.vgg.features(self._scaling(img), LPIPS_LAYERS)
        out = []
        for name in LPIPS_LAYERS:
            f = _wide(raw[name])  # [N, C_k, H_k, W_k]
            norm = f.square().sum(dim=1, keepdim=True).sqrt()
            out.append(f / (norm + 1e-10))
        return out

    def distance(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS from `features` outputs (feats1 may have batch 1) -> [N]."""
        total: torch.Tensor | None = None
        for k, (f0, f1) in enumerate(zip(feats0, feats1, strict=True)):
            w = getattr(self, f"lin{k}").to(f0.dtype)  # [C_k]
            # mean_hw sum_c w_c d_c == sum_c w_c mean_hw d_c (the 1x1 conv commutes with the mean)
            term = ((f0 - f1).square().mean(dim=(2, 3)) * w).sum(dim=1)  # [N]
            total = term if total is None else total + term
        assert total is not None
        return total

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image, [N]; inputs [N, 3, H, W] in [-1, 1]."""
        return self.distance(self.features(img0), self.features(img1))


def load_lpips(
    vgg: str | os.PathLike | VGG16Features = "vgg16-torchvision",  # LPIPS's trunk
    weights: str | os.PathLike = "lpips-vgg",  # the linear layers: registry name or file path
    device: str | torch.device = "cpu",
) -> LPIPS:
    """LPIPS v0.1 (VGG): our VGG-16 with torchvision weights + the LPIPS linear layers, read by
    `checkpoints.vgg_weights` ("lpips-vgg": an installed `lpips` package's file, else the
    registry's)."""
    from .checkpoints.vgg_weights import load_vgg16, read_lpips_linear, resolve_lpips_weights

    trunk = vgg if isinstance(vgg, VGG16Features) else load_vgg16(vgg)
    module = LPIPS(trunk, read_lpips_linear(resolve_lpips_weights(weights)))
    module.source = str(weights)
    return module.to(device)


class Image2StyleGANLoss(nn.Module):
    """Eq. 1 (perceptual + MSE), optionally + LPIPS, per image; target features cached.

    `terms = loss_fn(img, target)` or `loss_fn.set_target(target)` once, then `loss_fn(img)` every
    step. Returns {"perceptual", "mse", "total"} (+ "lpips" when an LPIPS module is given), each
    [N]: `perceptual` is Eq. 2 with its lambda_j, `mse` the unweighted (1/N)||I - G(w)||^2, and
    total = perceptual + mse_weight * mse (+ lpips_weight * lpips). Ablations of Sec. 5.2/Fig. 9:
    pixel-only = `layers=()` (vgg may be None), perceptual-only = `mse_weight=0`, single layers
    = `layers=("conv3_2",)`; a layer with weight 0 is not computed.
    """

    def __init__(
        self,
        vgg: VGG16Features | None,  # F of Eq. 2; None only when no perceptual layer is used
        layers: Sequence[str] = DEFAULT_LAYERS,  # F_j: conv1_1, conv1_2, conv3_2, conv4_2 (paper)
        layer_weights: Sequence[float] | None = None,  # lambda_j; None = 1 for every layer
        mse_weight: float = 1.0,  # lambda_mse (paper: 1)
        perceptual_size: Size = 256,  # side the perceptual term sees; None = full resolution
        lpips: LPIPS | None = None,  # optional LPIPS (VGG) term, on the same resized images
        lpips_weight: float = 1.0,  # its weight in `total` (used only when lpips is given)
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        if layer_weights is None:
            layer_weights = (1.0,) * len(layers)
        if len(layer_weights) != len(layers):
            raise ValueError(f"{len(layers)} layers but {len(layer_weights)} layer weights")
        weights: dict[str, float] = {}
        for name, weight in zip(layers, layer_weights, strict=True):
            name = canonical_layer_name(name)
            if name in weights:
                raise ValueError(f"layer {name} is listed twice")
            if float(weight) != 0.0:
                weights[name] = float(weight)
        if weights and vgg is None:
            raise ValueError(
                "perceptual layers need a VGG-16 (load_vgg16); pass layers=() for MSE only"
            )
        if isinstance(perceptual_size, int) and perceptual_size < 1:
            raise ValueError(f"perceptual_size must be positive or None, got {perceptual_size}")
        self.vgg = vgg
        self.lpips = lpips
        self.layer_weights = weights  # canonical name -> lambda_j, zero weights dropped
        self.mse_weight = float(mse_weight)
        self.lpips_weight = float(lpips_weight)
        self.perceptual_size = perceptual_size
        self._target: torch.Tensor | None = None  # [N or 1, 3, H, W]
        self._target_feats: dict[str, torch.Tensor] = {}
        self._target_lpips: list[torch.Tensor] = []

    # -- target caching ------------------------------------------------------------------------

    @torch.no_grad()
    def set_target(self, target: torch.Tensor) -> None:
        """Compute the target's features once; later `loss_fn(img)` calls reuse them."""
        self._check_image(target, "target")
        self._target = target.detach()
        self._target_feats, self._target_lpips = self._target_features(self._target)

    def clear_target(self) -> None:
        self._target, self._target_feats, self._target_lpips = None, {}, []

    def _target_features(
        self, target: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        small = resize_for_perceptual(_wide(target), self.perceptual_size)
        feats = (
            self.vgg(small, tuple(self.layer_weights))
            if self.vgg is not None and self.layer_weights
            else {}
        )
        lp = self.lpips.features(small) if self.lpips is not None else []
        return {k: v.detach() for k, v in feats.items()}, [f.detach() for f in lp]

    # -- the loss ------------------------------------------------------------------------------

    def forward(
        self,
        img: torch.Tensor,  # [N, 3, H, W], G(w), range ~[-1, 1]
        target: torch.Tensor | None = None,  # [N or 1, 3, H, W]; None = the cached target
    ) -> dict[str, torch.Tensor]:
        self._check_image(img, "image")
        if target is not None:
            self._check_image(target, "target")
            with torch.no_grad():
                target_feats, target_lpips = self._target_features(target)
        elif self._target is not None:
            target, target_feats, target_lpips = (
                self._target,
                self._target_feats,
                self._target_lpips,
            )
        else:
            raise ValueError("no target: pass loss_fn(img, target) or call set_target(target)")
        if target.shape[1:] != img.shape[1:] or target.shape[0] not in (1, img.shape[0]):
            raise ValueError(
                f"target {tuple(target.shape)} does not fit image batch {tuple(img.shape)} "
                "(same C, H, W; batch 1 or equal)"
            )
        device = img.device
        mse = mse_loss(img, target.to(device))  # [N]
        terms: dict[str, torch.Tensor] = {}
        small = None
        if self.layer_weights or self.lpips is not None:
            small = resize_for_perceptual(_wide(img), self.perceptual_size)
        if self.layer_weights:
            assert self.vgg is not None and small is not None
            feats = self.vgg(small, tuple(self.layer_weights))
            tf = {k: v.to(device) for k, v in target_feats.items()}
            perceptual = perceptual_loss(feats, tf, self.layer_weights)
        else:
            perceptual = torch.zeros_like(mse)
        total = perceptual + self.mse_weight * mse
        terms["perceptual"] = perceptual
        terms["mse"] = mse
        if self.lpips is not None:
            assert small is not None
            lp = self.lpips.distance(
                self.lpips.features(small), [f.to(device) for f in target_lpips]
            )
            terms["lpips"] = lp
            total = total + self.lpips_weight * lp
        terms["total"] = total
        return terms

    @staticmethod
    def _check_image(x: torch.Tensor, what: str) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{what} must be an RGB batch [N, 3, H, W], got {shape}")

    def extra_repr(self) -> str:
        return (
            f"layer_weights={self.layer_weights}, mse_weight={self.mse_weight}, "
            f"perceptual_size={self.perceptual_size}"
            + (f", lpips_weight={self.lpips_weight}" if self.lpips is not None else "")
        )
