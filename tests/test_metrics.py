"""Reconstruction metrics against hand computations written here independently (numpy), and the
8-bit contract: metrics of tensors equal the metrics of the PNG files written from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from image2stylegan import metrics as M
from image2stylegan.image import fit_image, load_image, pil_to_tensor, save_image, tensor_to_pil
from image2stylegan.losses import load_lpips
from tests.fixtures.vgg_files import write_lpips_linear, write_torchvision_vgg16


def _images(seed: int = 0, size: tuple[int, int] = (24, 20)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    noise = rng.integers(-30, 31, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    return a, b


def hand_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 written out: 11x11 Gaussian (sigma 1.5, sum 1) as an explicit 2-D
    window, population moments per window, C1 = (0.01*255)^2, C2 = (0.03*255)^2, every window
    position inside the image, mean over positions and channels."""
    ax = np.arange(-5, 6, dtype=np.float64)
    w2 = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    w2 /= w2.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    H, W, C = a.shape
    values = []
    for c in range(C):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        for i in range(H - 10):
            for j in range(W - 10):
                px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
                mx, my = (w2 * px).sum(), (w2 * py).sum()
                vx = (w2 * (px - mx) ** 2).sum()
                vy = (w2 * (py - my) ** 2).sum()
                cxy = (w2 * (px - mx) * (py - my)).sum()
                values.append(
                    ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                )
    return float(np.mean(values))


def test_mse_and_psnr_against_the_formula():
    a, b = _images()
    d = a.astype(np.float64) - b.astype(np.float64)
    expected_mse = float(np.sum(d * d) / d.size)
    assert M.mse(a, b) == pytest.approx(expected_mse, rel=1e-12)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / expected_mse), rel=1e-12)
    shifted = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    flat = np.full_like(a, 100)
    assert M.psnr(flat, flat + 5) == pytest.approx(10 * math.log10(65025 / 25))  # 34.151 dB
    assert M.psnr(a, a) == math.inf and M.mse(a, shifted) <= 25


def test_masked_mse_averages_over_the_mask_only():
    a, b = _images(1)
    mask = np.zeros(a.shape[:2])
    mask[3:11, 2:9] = 1.0
    sel = mask > 0
    d = a[sel].astype(np.float64) - b[sel].astype(np.float64)
    assert M.mse(a, b, mask) == pytest.approx(float((d**2).mean()), rel=1e-12)
    b2 = b.copy()
    b2[~sel] = 0  # pixels outside the mask do not count
    assert M.psnr(a, b2, mask) == M.psnr(a, b, mask)
    with pytest.raises(ValueError, match="no pixel"):
        M.mse(a, b, np.zeros(a.shape[:2]))


def test_ssim_against_hand_computation():
    a, b = _images(2)
    assert M.ssim(a, b) == pytest.approx(hand_ssim(a, b), abs=1e-12)
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim_map(a, b).shape == (a.shape[0] - 10, a.shape[1] - 10, 3)
    # structure-destroying change scores lower than a small one
    c = np.clip(a.astype(int) + 2, 0, 255).astype(np.uint8)
    assert M.ssim(a, c) > M.ssim(a, b)
    with pytest.raises(ValueError, match="at least 11 px"):
        M.ssim(a[:10], b[:10])


def test_masked_ssim_weights_window_centres():
    a, b = _images(3, (30, 30))
    mask = np.zeros((30, 30))
    mask[:, :15] = 1.0
    s = M.ssim_map(a, b)
    centre = mask[5:25, 5:25]
    expected = (s * centre[..., None]).sum() / (centre.sum() * 3)
    assert M.ssim(a, b, mask) == pytest.approx(float(expected), abs=1e-12)


def test_metrics_of_tensors_equal_the_metrics_of_the_pngs(tmp_path: Path):
    """The contract of the latent metadata: numbers are those of target.png/reconstruction.png."""
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    recon = (target + 0.1 * torch.randn(1, 3, 32, 32, generator=gen)).clamp(-1.2, 1.2)
    save_image(tensor_to_pil(target[0]), tmp_path / "t.png")
    save_image(tensor_to_pil(recon[0]), tmp_path / "r.png")
    from_files = M.reconstruction_metrics(Image.open(tmp_path / "t.png"),
                                          Image.open(tmp_path / "r.png"))  # fmt: skip
    from_tensors = M.reconstruction_metrics(target, recon)
    assert from_files == from_tensors
    # independently: x * 127.5 + 128, clamp, truncate
    ta = np.clip(target[0].permute(1, 2, 0).numpy() * 127.5 + 128, 0, 255).astype(np.uint8)
    ra = np.clip(recon[0].permute(1, 2, 0).numpy() * 127.5 + 128, 0, 255).astype(np.uint8)
    d = ta.astype(np.float64) - ra
    assert from_tensors["psnr"] == pytest.approx(10 * math.log10(255**2 / (d**2).mean()))
    # a target decoded from an 8-bit frame survives the round trip exactly
    frame = Image.fromarray(_images(4)[0])
    assert np.array_equal(M.as_uint8(pil_to_tensor(frame)), np.asarray(frame))


def test_reconstruction_metrics_with_a_mask_composites_for_lpips_like_metrics():
    a, b = _images(5, (32, 32))
    mask = np.zeros((32, 32))
    mask[8:24, 8:24] = 1
    seen = []

    class Recorder:
        def __call__(self, x: np.ndarray, y: np.ndarray) -> float:
            seen.append((x, y))
            return 0.0

    out = M.reconstruction_metrics(a, b, mask=mask, lpips=Recorder())
    assert set(out) == {"psnr", "ssim", "mse", "lpips"}
    x, y = seen[0]
    assert x is a or np.array_equal(x, a)
    assert np.array_equal(y[mask == 0], a[mask == 0]) and np.array_equal(y[mask == 1], b[mask == 1])


def test_lpips_metric_is_the_lpips_module_on_the_8bit_images(tmp_path: Path, shared_images: Path):
    tv, lin = tmp_path / "vgg16.pth", tmp_path / "vgg.pth"
    write_torchvision_vgg16(tv, seed=3)
    write_lpips_linear(lin, seed=4)
    metric = M.load_lpips_metric(vgg=str(tv), weights=str(lin))
    assert metric is not None
    a = fit_image(load_image(shared_images / "face_01.jpg"), (64, 64))
    b = fit_image(load_image(shared_images / "face_02.jpg"), (64, 64))
    module = load_lpips(str(tv), str(lin))
    with torch.no_grad():
        expected = float(module(pil_to_tensor(a), pil_to_tensor(b))[0])
    assert metric(a, b) == pytest.approx(expected, rel=1e-5)
    assert metric(a, a) == pytest.approx(0.0, abs=1e-7)


def test_lpips_is_skipped_without_weights_and_never_downloads(monkeypatch: pytest.MonkeyPatch):
    from image2stylegan.checkpoints import registry

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a metric tried to download weights")

    monkeypatch.setattr(registry, "download_entry", no_network)
    assert not M.lpips_available()
    assert M.load_lpips_metric() is None


def test_identity_similarity_from_dlib_descriptors(shared_images: Path):
    identity = M.load_face_identity()
    assert identity is not None
    face1 = fit_image(load_image(shared_images / "face_01.jpg"), (256, 256))
    face2 = fit_image(load_image(shared_images / "face_02.jpg"), (256, 256))
    same = identity(face1, face1)
    assert same["id"] == pytest.approx(1.0, abs=1e-9) and same["id_distance"] == pytest.approx(0)
    other = identity(face1, face2)
    a = np.asarray(identity.descriptor(M.as_uint8(face1), identity.face_box(M.as_uint8(face1))))
    assert a.shape == (128,)
    assert other["id"] < 0.99 and other["id_distance"] > 0.1
    # a slightly degraded copy of the same face stays closer than another person
    blurred = Image.fromarray(M.as_uint8(face1)).resize((128, 128)).resize((256, 256))
    assert identity(face1, blurred)["id_distance"] < other["id_distance"]
    cat = fit_image(load_image(shared_images / "cat_01.jpg"), (256, 256))
    assert identity.face_box(M.as_uint8(cat)) is None
    assert identity(cat, cat) == {}  # no face in the target: no ID metrics


def test_format_metrics_line():
    line = M.format_metrics({"psnr": 31.234, "ssim": 0.91234, "mse": 48.7, "lpips": 0.1})
    assert line == "PSNR 31.23 dB, SSIM 0.9123, MSE 48.7, LPIPS 0.1"
