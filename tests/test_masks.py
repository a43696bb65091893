"""Masked (local) embedding, Image2StyleGAN++ Eq. 1: pixels where the mask is 0 have no influence
(bit-identical results), masks are transformed like their images, and the metrics of a masked
embedding are measured over the mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from image2stylegan import load_latent
from image2stylegan import metrics as M
from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.embed import EmbedConfig, build_embedder
from image2stylegan.embed.masks import MaskedLoss, RegionLoss, apply_mask, mask_to_tensor
from image2stylegan.embed.targets import prepare_target
from image2stylegan.errors import ImageError
from image2stylegan.image import fit_image, load_image
from image2stylegan.losses import Image2StyleGANLoss

from .fixtures.embedding import embedding_generator

FAST = ["--vgg", "random", "--perceptual-size", "16", "--lr", "0.05", "--quiet"]


@pytest.fixture(scope="module")
def G():
    return embedding_generator(32, seed=0)


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory, G) -> Path:
    path = tmp_path_factory.mktemp("gen") / "tiny.safetensors"
    save_native(G, path, source="test")
    return path


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _half_mask(size: int = 32) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., :, : size // 2] = 1.0
    m[..., 4:9, 20:26] = 0.5  # soft weights count too
    return m


def test_apply_mask_is_black_where_the_mask_is_zero():
    x = torch.randn(1, 3, 8, 8) * 3
    m = torch.zeros(1, 1, 8, 8)
    m[..., :4] = 0.25
    y = apply_mask(x, m)
    assert torch.equal(y[..., 4:], torch.full_like(y[..., 4:], -1.0))
    assert torch.allclose(y[..., :4], (x[..., :4] + 1) * 0.25 - 1)


def test_masked_out_pixels_have_no_influence_bit_for_bit(G):
    """Two targets that differ only where the mask is 0: identical codes, noise maps, images,
    loss histories — through the W+ steps, the perceptual term and the noise stage."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        a = G.synthesis(G.mapping(torch.randn(1, G.z_dim, generator=gen)), noise_mode="const")
    mask = _half_mask()
    b = a.clone()
    b[..., mask[0, 0] == 0] = torch.rand(3, int((mask == 0).sum()), generator=gen) * 2 - 1
    assert not torch.equal(a, b)
    cfg = EmbedConfig(steps=8, lr=0.05, perceptual_size=16, noise_steps=6, noise_lr=1.0)
    emb = build_embedder(G, cfg, vgg="random")
    ra, rb = emb.run(a, masks=mask), emb.run(b, masks=mask)
    assert torch.equal(ra.ws, rb.ws) and torch.equal(ra.images, rb.images)
    assert all(torch.equal(x, y) for x, y in zip(ra.noise, rb.noise, strict=True))
    assert torch.equal(ra.history, rb.history)
    unmasked = emb.run(b)  # without the mask the other target matters
    assert not torch.equal(unmasked.ws, rb.ws)


def test_masked_loss_equals_the_formula():
    """Eq. 1 of Image2StyleGAN++ (pixel term): ||M ⊙ (G - x)||^2 / N on the 0-255 scale."""
    gen = torch.Generator().manual_seed(0)
    img, tgt = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    m = torch.rand(2, 1, 16, 16, generator=gen)
    loss = MaskedLoss(Image2StyleGANLoss(None, layers=(), mse_weight=1.0), m)
    loss.set_target(tgt)
    expected = ((m * (img - tgt) * 127.5) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(loss(img)["mse"], expected, rtol=1e-5)
    # two regions with their own targets add up (the crossover loss)
    other = torch.rand(2, 3, 16, 16) * 2 - 1
    pair = RegionLoss(
        [(Image2StyleGANLoss(None, layers=()), m, None),
         (Image2StyleGANLoss(None, layers=()), 1 - m, other)]
    )  # fmt: skip
    pair.set_target(tgt)
    both = ((m * (img - tgt) * 127.5) ** 2 + ((1 - m) * (img - other) * 127.5) ** 2).mean(
        dim=(1, 2, 3)
    )
    assert torch.allclose(pair(img)["mse"], both, rtol=1e-5)


def _write_pair(tmp_path: Path, shared_images: Path) -> tuple[Path, Path, Path]:
    """A photo, the same photo with its right half replaced, and the left-half mask."""
    photo = fit_image(load_image(shared_images / "cat_01.jpg"), (48, 40))
    a = np.asarray(photo).copy()
    b = a.copy()
    b[:, 24:] = np.random.default_rng(0).integers(0, 256, b[:, 24:].shape, dtype=np.uint8)
    mask = np.zeros(a.shape[:2], np.uint8)
    mask[:, :24] = 255
    paths = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "mask.png"
    for p, arr in zip(paths, (a, b, mask), strict=True):
        Image.fromarray(arr).save(p)
    return paths


def test_embed_mask_cli_invariance_and_masked_metrics(gen_file, shared_images, tmp_path, capsys):
    a, b, mask = _write_pair(tmp_path, shared_images)
    args = ["-g", gen_file, "--steps", "4", "--noise-steps", "3", "--mask", mask, *FAST]
    for src, out in ((a, "ra"), (b, "rb")):
        code, _, err = run_cli(["embed", src, "--out", tmp_path / out, *args], capsys)
        assert code == 0, err
    la, lb = (load_latent(tmp_path / o / n / "latent.npz") for o, n in (("ra", "a"), ("rb", "b")))
    assert torch.equal(la.w, lb.w) and la.extras.keys() == lb.extras.keys()
    assert all(torch.equal(la.extras[k], lb.extras[k]) for k in la.extras)
    folder = tmp_path / "ra" / "a"
    frame_mask = Image.open(folder / "mask.png")
    assert frame_mask.size == (32, 32) and la.metadata["masked"] is True
    target, recon = Image.open(folder / "target.png"), Image.open(folder / "reconstruction.png")
    meta = la.metadata["metrics"]
    assert meta["psnr"] == pytest.approx(M.psnr(target, recon, frame_mask), abs=1e-9)
    assert meta["psnr"] != pytest.approx(M.psnr(target, recon), abs=1e-3)  # not the full frame
    assert la.metadata["noise_maps"] == 7 and "noise_06" in la.extras


def test_mask_follows_the_fit_and_the_alignment(shared_images, tmp_path):
    photo = load_image(shared_images / "face_01.jpg")
    gray = photo.convert("L")  # a "mask" equal to the image's own luminance
    target = prepare_target(photo, 64, align=True, mask=gray)
    assert target.mask is not None and target.mask.size == (64, 64)
    frame_gray = np.asarray(target.frame.convert("L"), dtype=np.float64)
    warped = np.asarray(target.mask, dtype=np.float64)
    inside = warped > 0  # where the warp had photo pixels (the image's padding is undefined)
    assert inside.mean() > 0.5
    assert np.abs(frame_gray[inside] - warped[inside]).mean() < 3.0  # the same warp and fit
    # letterboxed (fit=pad): the bars are undefined
    wide = Image.new("L", (80, 40), 255)
    padded = prepare_target(Image.new("RGB", (80, 40), "red"), 32, fit="pad", mask=wide)
    m = np.asarray(padded.mask)
    assert m[0].max() == 0 and m[16].min() == 255


def test_mask_errors(shared_images, tmp_path):
    small = tmp_path / "small.png"
    Image.new("L", (20, 20), 255).save(small)
    with pytest.raises(ImageError, match="the mask is 20x20 px but its image is"):
        prepare_target(shared_images / "cat_01.jpg", 32, mask=small)
    black = tmp_path / "black.png"
    photo = load_image(shared_images / "cat_01.jpg")
    Image.new("L", photo.size, 0).save(black)
    with pytest.raises(ImageError, match="black everywhere"):
        prepare_target(shared_images / "cat_01.jpg", 32, mask=black)
    assert mask_to_tensor(Image.new("L", (4, 4), 255)).shape == (1, 1, 4, 4)


def test_embed_mask_usage_error(gen_file, shared_images, tmp_path, capsys):
    code, _, err = run_cli(
        ["embed", shared_images / "cat_01.jpg", "-g", gen_file, "--mask", tmp_path / "no.png",
         "--out", tmp_path / "o", *FAST],
        capsys,
    )  # fmt: skip
    assert code == 2 and "--mask" in err and "no such file" in err
