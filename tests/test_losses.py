"""Eq. 1 / Eq. 2: values against a hand computation, gradients, batching, caching, variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from image2stylegan.checkpoints.vgg_weights import load_vgg16
from image2stylegan.losses import Image2StyleGANLoss, mse_loss, resize_for_perceptual


@pytest.fixture(scope="module")
def vgg():
    return load_vgg16("random", seed=3, preprocessing="caffe")  # the paper's 0-255 input scale


def _pair(n: int = 2, size: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    target = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return img, target


def test_value_equals_hand_computation_of_eq1(vgg) -> None:
    img, target = _pair(n=2, size=40)
    layers = ("conv1_1", "conv1_2", "conv3_2", "conv4_2")
    lambdas = (1.0, 0.5, 2.0, 3.0)
    lambda_mse = 0.7
    loss_fn = Image2StyleGANLoss(
        vgg, layers=layers, layer_weights=lambdas, mse_weight=lambda_mse, perceptual_size=24
    )
    terms = loss_fn(img, target)
    assert set(terms) == {"perceptual", "mse", "total"}
    assert all(t.shape == (2,) for t in terms.values())

    # By hand, in float64 numpy: explicit sums and explicit N_j / N.
    small_i = F.interpolate(img, size=(24, 24), mode="bilinear", antialias=True)
    small_t = F.interpolate(target, size=(24, 24), mode="bilinear", antialias=True)
    fi = {k: v.double().numpy() for k, v in vgg(small_i, layers).items()}
    ft = {k: v.double().numpy() for k, v in vgg(small_t, layers).items()}
    pix_i = (img.double().numpy() + 1) * 255 / 2  # [0, 255]
    pix_t = (target.double().numpy() + 1) * 255 / 2
    for n in range(2):
        percept = 0.0
        for name, lam in zip(layers, lambdas, strict=True):
            C, h, w = fi[name].shape[1:]
            N_j = C * h * w
            percept += lam / N_j * np.sum((fi[name][n] - ft[name][n]) ** 2)
        N = 3 * 40 * 40
        mse = np.sum((pix_i[n] - pix_t[n]) ** 2) / N
        assert terms["perceptual"][n].item() == pytest.approx(percept, rel=1e-5)
        assert terms["mse"][n].item() == pytest.approx(mse, rel=1e-5)
        assert terms["total"][n].item() == pytest.approx(percept + lambda_mse * mse, rel=1e-5)
    # the expected layer sizes at 24 px: 24, 24, 6, 3
    assert [fi[k].shape[2] for k in layers] == [24, 24, 6, 3]


def test_gradcheck_wrt_image_float64() -> None:
    vgg = load_vgg16("random", seed=1, preprocessing="caffe").double()
    # 10 px -> 8 px: the resize is part of the checked graph
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=8)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 10, 10, generator=g, dtype=torch.float64) * 2 - 1
    loss_fn.set_target(target)
    img = (torch.rand(1, 3, 10, 10, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    # scale to O(1): the 0-255 scale makes the raw loss ~1e4
    assert torch.autograd.gradcheck(
        lambda x: loss_fn(x)["total"] / 1e4, (img,), eps=1e-6, atol=1e-5
    )


def test_batch_equals_per_image_and_target_broadcast(vgg) -> None:
    img, target = _pair(n=3, size=32)
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=16)
    batched = loss_fn(img, target)
    for i in range(3):
        single = loss_fn(img[i : i + 1], target[i : i + 1])
        for k in batched:
            torch.testing.assert_close(batched[k][i : i + 1], single[k], rtol=1e-5, atol=0)
    shared = loss_fn(img, target[:1])  # one target for every image (e.g. several inits)
    for i in range(3):
        one = loss_fn(img[i : i + 1], target[:1])
        torch.testing.assert_close(shared["total"][i : i + 1], one["total"], rtol=1e-5, atol=0)


def test_cached_target_equals_uncached(vgg) -> None:
    img, target = _pair(n=2, size=32)
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=16)
    uncached = loss_fn(img, target)
    loss_fn.set_target(target)
    for _ in range(2):  # reused across steps
        cached = loss_fn(img)
        for k in uncached:
            torch.testing.assert_close(cached[k], uncached[k], rtol=0, atol=0)
    # an explicit target wins over the cache and leaves it alone
    other = loss_fn(img, img)
    assert torch.all(other["total"] == 0)
    torch.testing.assert_close(loss_fn(img)["total"], uncached["total"], rtol=0, atol=0)
    loss_fn.clear_target()
    with pytest.raises(ValueError, match="no target: pass loss_fn"):
        loss_fn(img)


def test_gradients_flow_to_image_only(vgg) -> None:
    img, target = _pair(n=2, size=32)
    img.requires_grad_()
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=16)
    loss_fn.set_target(target)
    loss_fn(img)["total"].sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_variants_pixel_only_perceptual_only_single_layer(vgg) -> None:
    img, target = _pair(n=2, size=32)
    full = Image2StyleGANLoss(vgg, perceptual_size=16)(img, target)
    pixel = Image2StyleGANLoss(None, layers=(), perceptual_size=16)(img, target)
    assert torch.all(pixel["perceptual"] == 0)
    torch.testing.assert_close(pixel["total"], full["mse"])
    torch.testing.assert_close(pixel["mse"], mse_loss(img, target))
    percept = Image2StyleGANLoss(vgg, mse_weight=0, perceptual_size=16)(img, target)
    torch.testing.assert_close(percept["total"], full["perceptual"])
    torch.testing.assert_close(percept["mse"], full["mse"])  # still reported for logging
    # Eq. 2 is a sum over layers: per-layer losses add up to the full one
    per_layer = [
        Image2StyleGANLoss(vgg, layers=(name,), perceptual_size=16)(img, target)["perceptual"]
        for name in ("conv1_1", "conv1_2", "conv3_2", "conv4_2")
    ]
    torch.testing.assert_close(sum(per_layer), full["perceptual"], rtol=1e-5, atol=0)
    # weight 0 switches a layer off (and it is not computed)
    off = Image2StyleGANLoss(vgg, layer_weights=(1, 1, 1, 0), perceptual_size=16)
    assert tuple(off.layer_weights) == ("conv1_1", "conv1_2", "conv3_2")
    torch.testing.assert_close(
        off(img, target)["perceptual"], sum(per_layer[:3]), rtol=1e-5, atol=0
    )


def test_perceptual_size_full_resolution_and_aspect(vgg) -> None:
    img, target = _pair(n=1, size=32)
    full = Image2StyleGANLoss(vgg, layers=("conv1_1",), perceptual_size=None)(img, target)
    f_i, f_t = vgg(img, ("conv1_1",))["conv1_1"], vgg(target, ("conv1_1",))["conv1_1"]
    torch.testing.assert_close(full["perceptual"], (f_i - f_t).square().mean(dim=(1, 2, 3)))
    same = Image2StyleGANLoss(vgg, layers=("conv1_1",), perceptual_size=32)(img, target)
    torch.testing.assert_close(same["perceptual"], full["perceptual"], rtol=0, atol=0)
    wide = torch.zeros(1, 3, 384, 512)
    assert resize_for_perceptual(wide, 256).shape[-2:] == (192, 256)  # longer side, aspect kept
    assert resize_for_perceptual(wide, (100, 50)).shape[-2:] == (100, 50)
    assert resize_for_perceptual(torch.zeros(1, 3, 1024, 1024), 256).shape[-2:] == (256, 256)
    # antialiased: a 1-px checkerboard averages to grey instead of aliasing
    checker = (torch.arange(64).view(1, -1) + torch.arange(64).view(-1, 1)) % 2 * 2.0 - 1
    small = resize_for_perceptual(checker.expand(1, 3, 64, 64), 16)
    assert small.abs().max() < 0.05


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_no_nans_and_close(vgg, dtype: torch.dtype) -> None:
    """CPU autocast stands in for CUDA autocast (same casting rules for conv / reductions)."""
    img, target = _pair(n=2, size=32)
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=16)
    ref = loss_fn(img, target)
    x = img.clone().requires_grad_()
    try:
        with torch.autocast("cpu", dtype=dtype):
            loss_fn.set_target(target)
            terms = loss_fn(x)
    except RuntimeError as e:  # fp16 CPU kernels missing on old builds
        pytest.skip(f"CPU autocast {dtype} unsupported here: {e}")
    for k, v in terms.items():
        assert v.dtype == torch.float32, k
        assert torch.isfinite(v).all(), k
    torch.testing.assert_close(terms["mse"], ref["mse"], rtol=1e-6, atol=0)
    torch.testing.assert_close(terms["perceptual"], ref["perceptual"], rtol=0.1, atol=0)
    terms["total"].sum().backward()
    assert torch.isfinite(x.grad).all()


def test_argument_and_shape_errors(vgg) -> None:
    img, target = _pair(n=2, size=32)
    with pytest.raises(ValueError, match="4 layers but 3 layer weights"):
        Image2StyleGANLoss(vgg, layer_weights=(1, 1, 1))
    with pytest.raises(ValueError, match="perceptual layers need a VGG-16"):
        Image2StyleGANLoss(None)
    with pytest.raises(ValueError, match="unknown VGG-16 layer 'conv9_9'"):
        Image2StyleGANLoss(vgg, layers=("conv9_9",))
    with pytest.raises(ValueError, match="listed twice"):
        Image2StyleGANLoss(vgg, layers=("conv1_1", "relu1_1"))
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=16)
    with pytest.raises(ValueError, match=r"does not fit image batch"):
        loss_fn(img, target[:, :, :16])
    with pytest.raises(ValueError, match=r"does not fit image batch"):
        loss_fn(img, torch.cat([target, target]))
    with pytest.raises(
        ValueError, match=r"image must be an RGB batch \[N, 3, H, W\], got \(3, 32, 32\)"
    ):
        loss_fn(img[0], target)
