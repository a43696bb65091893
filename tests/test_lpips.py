"""LPIPS (VGG, v0.1): value against a hand computation of the formula, file reading, errors."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from image2stylegan.checkpoints.vgg_weights import load_vgg16, read_lpips_linear
from image2stylegan.errors import CheckpointError
from image2stylegan.image import fit_image, load_image, pil_to_tensor
from image2stylegan.losses import LPIPS, Image2StyleGANLoss, load_lpips
from tests.fixtures.vgg_files import (
    VGG16_CFG,
    write_keras_vgg16_h5,
    write_lpips_linear,
    write_torchvision_vgg16,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("lpips")
    tv, lin = d / "vgg16-397923af.pth", d / "vgg.pth"
    return {
        "tv": tv,
        "tv_raw": write_torchvision_vgg16(tv, seed=11),
        "lin": lin,
        "lin_raw": write_lpips_linear(lin, seed=12),
        "dir": d,
    }


@pytest.fixture(scope="module")
def pair(shared_images: Path) -> torch.Tensor:
    """Two real photos (shared test images), 64 x 64, as [2, 3, 64, 64] in [-1, 1]."""
    ims = [
        fit_image(load_image(shared_images / n), (64, 64)) for n in ("face_01.jpg", "cat_01.jpg")
    ]
    return torch.cat([pil_to_tensor(im) for im in ims])


def hand_lpips(tv_raw: dict, lin_raw: list, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 written out: ScalingLayer, VGG-16 relu1_2..relu5_3 (torchvision indices 3, 8,
    15, 22, 29), unit-normalise over channels (eps 1e-10), squared difference, 1x1 conv with the
    linear weights, spatial mean, sum over the five layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=x0.dtype).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=x0.dtype).view(1, 3, 1, 1)
    taps = (3, 8, 15, 22, 29)  # ReLU indices in torchvision's features

    def trunk(x: torch.Tensor) -> list[torch.Tensor]:
        outs, i = [], 0
        x = (x - shift) / scale
        for c in VGG16_CFG:
            if c == "M":
                x = F.max_pool2d(x, 2, 2)
                i += 1
                continue
            w = torch.from_numpy(tv_raw[f"features.{i}.weight"]).to(x.dtype)
            b = torch.from_numpy(tv_raw[f"features.{i}.bias"]).to(x.dtype)
            x = F.relu(F.conv2d(x, w, b, padding=1))
            if i + 1 in taps:
                outs.append(x)
            i += 2
        return outs

    total = 0
    for f0, f1, w in zip(trunk(x0), trunk(x1), lin_raw, strict=True):
        n0 = f0 / (torch.sqrt(torch.sum(f0**2, dim=1, keepdim=True)) + 1e-10)
        n1 = f1 / (torch.sqrt(torch.sum(f1**2, dim=1, keepdim=True)) + 1e-10)
        lin = F.conv2d((n0 - n1) ** 2, torch.from_numpy(w).to(x0.dtype))  # [N, 1, h, w]
        total = total + lin.mean(dim=(2, 3), keepdim=True)
    return total.view(-1)  # [N]


def test_lpips_equals_hand_computation_on_real_images(files: dict, pair: torch.Tensor) -> None:
    lpips = load_lpips(files["tv"], files["lin"])
    x0, x1 = pair[:1], pair[1:]
    ours = lpips(x0, x1)
    assert ours.shape == (1,)
    ref64 = hand_lpips(files["tv_raw"], files["lin_raw"], x0.double(), x1.double())
    assert float(ref64) > 0
    torch.testing.assert_close(ours.double(), ref64, rtol=1e-5, atol=0)
    ours64 = lpips.double()(x0.double(), x1.double())
    torch.testing.assert_close(ours64, ref64, rtol=1e-12, atol=0)


def test_lpips_properties(files: dict, pair: torch.Tensor) -> None:
    lpips = load_lpips(files["tv"], files["lin"])
    assert torch.all(lpips(pair, pair) == 0)
    d01, d10 = lpips(pair[:1], pair[1:]), lpips(pair[1:], pair[:1])
    torch.testing.assert_close(d01, d10)
    both = lpips(pair, pair.flip(0))  # batched = per pair
    torch.testing.assert_close(both, torch.cat([d01, d10]), rtol=1e-5, atol=0)
    assert lpips.source == str(files["lin"]) and lpips.vgg.source == str(files["tv"])


def test_lpips_term_in_the_loss(files: dict, pair: torch.Tensor) -> None:
    lpips = load_lpips(files["tv"], files["lin"])
    vgg = load_vgg16("random", preprocessing="caffe")
    img, target = pair[:1], pair[1:]
    loss_fn = Image2StyleGANLoss(vgg, perceptual_size=32, lpips=lpips, lpips_weight=0.25)
    terms = loss_fn(img, target)
    small = F.interpolate(pair, size=(32, 32), mode="bilinear", antialias=True)
    torch.testing.assert_close(terms["lpips"], lpips(small[:1], small[1:]))
    torch.testing.assert_close(
        terms["total"], terms["perceptual"] + terms["mse"] + 0.25 * terms["lpips"]
    )
    loss_fn.set_target(target)
    cached = loss_fn(img)
    for k in terms:
        torch.testing.assert_close(cached[k], terms[k], rtol=0, atol=0)
    only = Image2StyleGANLoss(None, layers=(), mse_weight=0, perceptual_size=32, lpips=lpips)
    torch.testing.assert_close(only(img, target)["total"], terms["lpips"])


def test_lpips_weights_from_installed_package_without_importing_it(
    files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'lpips-vgg' is read from an installed lpips package's file; the package is never imported
    (it imports torchvision)."""
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('lpips must not be imported')\n")
    (package / "weights" / "v0.1" / "vgg.pth").write_bytes(files["lin"].read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "lpips", raising=False)
    lpips = load_lpips(files["tv"], "lpips-vgg")
    assert "lpips" not in sys.modules
    for k, w in enumerate(files["lin_raw"]):
        assert torch.equal(getattr(lpips, f"lin{k}"), torch.from_numpy(w).view(-1))


def test_real_file_layout_is_legacy_pickle(files: dict) -> None:
    """Our fixture matches the released file: a legacy (non-zip) torch pickle."""
    head = files["lin"].read_bytes()[:2]
    assert head == b"\x80\x02"
    weights = read_lpips_linear(files["lin"])
    assert [tuple(w.shape) for w in weights] == [(64,), (128,), (256,), (512,), (512,)]


def _save(path: Path, state: dict) -> Path:
    torch.save(OrderedDict(state), path, _use_new_zipfile_serialization=False)
    return path


def test_lpips_file_errors(files: dict, tmp_path: Path) -> None:
    alex = tmp_path / "alex.pth"
    write_lpips_linear(alex, seed=0, channels=(64, 192, 384, 256, 256))
    with pytest.raises(CheckpointError, match=r"lin1\.model\.1\.weight has shape .*AlexNet"):
        read_lpips_linear(alex)
    squeeze = tmp_path / "squeeze.pth"
    write_lpips_linear(squeeze, seed=0, channels=(64, 128, 256, 384, 384, 512, 512))
    with pytest.raises(CheckpointError, match="SqueezeNet"):
        read_lpips_linear(squeeze)
    state = torch.load(files["lin"], weights_only=True)
    del state["lin3.model.1.weight"]
    with pytest.raises(CheckpointError, match=r"missing LPIPS linear layer lin3"):
        read_lpips_linear(_save(tmp_path / "missing.pth", state))
    with pytest.raises(CheckpointError, match=r"not LPIPS linear weights .*features\.0\.weight"):
        read_lpips_linear(files["tv"])
    h5 = tmp_path / "keras.h5"
    write_keras_vgg16_h5(h5, seed=0)
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        read_lpips_linear(h5)
    with pytest.raises(CheckpointError, match=r"vgg\.pth: no such file"):
        load_lpips(files["tv"], tmp_path / "vgg.pth")
    with pytest.raises(ValueError, match="calibrated on torchvision's VGG-16"):
        LPIPS(load_vgg16("random", preprocessing="caffe"), [np.zeros(1)] * 5)
    with pytest.raises(ValueError, match="lin2 has 3 weights"):
        LPIPS(load_vgg16("random"), [torch.ones(c) for c in (64, 128, 3, 512, 512)])
