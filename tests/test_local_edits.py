"""The Image2StyleGAN++ applications (Sec. 7): crossover, inpainting, local style transfer and
scribble editing, as commands on a tiny generator with targets it drew from known latents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from image2stylegan import load_latent
from image2stylegan import metrics as M
from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.embed.applications import GramStyleLoss, scribble_mask
from image2stylegan.image import tensor_to_pil
from image2stylegan.models.vgg16 import VGG16Features

from .fixtures.embedding import embedding_generator

FAST = ["--vgg", "random", "--perceptual-size", "16", "--quiet"]


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny generator file and two images it drew from known latents (stored noise)."""
    d = tmp_path_factory.mktemp("local")
    G = embedding_generator(32, seed=0)
    save_native(G, d / "tiny.safetensors", source="test")
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=gen), truncation_psi=1.5)
        imgs = G.synthesis(ws, noise_mode="const")
    for i in range(2):
        tensor_to_pil(imgs[i]).save(d / f"img{i}.png")
    left = Image.new("L", (32, 32), 0)
    left.paste(255, (0, 0, 16, 32))
    left.save(d / "left.png")
    return d


def _region(a: np.ndarray, cols: slice) -> np.ndarray:
    return np.ascontiguousarray(a[:, cols])


def test_crossover_is_a_inside_and_b_outside(setup, capsys):
    d = setup
    out = d / "co"
    code, _, err = run_cli(
        ["crossover", d / "img0.png", d / "img1.png", "--mask", d / "left.png", "-g",
         d / "tiny.safetensors", "--out", out, "--steps", "150", "--lr", "0.05", "--loss", "mse",
         "--noise-steps", "0", "--blur", "1", *FAST],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    folder = out / "img0_x_img1"
    result = np.asarray(Image.open(folder / "reconstruction.png"))
    a, b = (np.asarray(Image.open(d / f"img{i}.png")) for i in range(2))
    left, right = slice(0, 13), slice(19, 32)  # away from the blurred seam
    assert (
        M.psnr(_region(result, left), _region(a, left))
        > M.psnr(_region(result, left), _region(b, left)) + 3
    )
    assert (
        M.psnr(_region(result, right), _region(b, right))
        > M.psnr(_region(result, right), _region(a, right)) + 3
    )
    strip = Image.open(folder / "crossover.png")
    assert strip.size == (5 * 32, 32)
    target = np.asarray(Image.open(folder / "target.png"))  # the naive copy-paste
    assert np.array_equal(target[:, :16], a[:, :16]) and np.array_equal(target[:, 16:], b[:, 16:])
    meta = load_latent(folder / "latent.npz").metadata
    assert meta["application"].startswith("crossover") and meta["image_b"] == "img1.png"


def test_inpaint_stages_rows_and_composites(setup, capsys):
    d = setup
    known = Image.new("L", (32, 32), 255)
    ImageDraw.Draw(known).rectangle((10, 10, 21, 21), fill=0)
    known.save(d / "known.png")
    out = d / "inp"
    code, _, err = run_cli(
        ["inpaint", d / "img0.png", "--mask", d / "known.png", "-g", d / "tiny.safetensors",
         "--out", out, "--steps", "20", "--lr", "0.05", "--noise-steps", "5", "--noise-lr", "0.1",
         *FAST],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    folder = out / "img0"
    stage1 = load_latent(folder / ".early_rows" / "latent.npz")
    final = load_latent(folder / "latent.npz")
    G = embedding_generator(32, seed=0)
    split = G.num_ws // 2
    w_avg = G.w_avg.reshape(1, 1, -1)
    # stage 1 moved only the early rows; stage 2 only the later ones
    assert torch.equal(stage1.w[:, split:], w_avg.expand(1, G.num_ws - split, -1))
    assert not torch.equal(stage1.w[:, :split], w_avg.expand(1, split, -1))
    assert torch.equal(final.w[:, :split], stage1.w[:, :split])
    assert not torch.equal(final.w[:, split:], stage1.w[:, split:])
    assert final.metadata["noise_maps"] == len(G.noise_buffers()) and final.metadata["masked"]
    fill = np.asarray(Image.open(folder / "fill.png"))
    assert np.array_equal(fill, np.asarray(Image.open(folder / "reconstruction.png")))
    comp = np.asarray(Image.open(folder / "composite.png"))
    photo = np.asarray(Image.open(folder / "target.png"))
    assert np.array_equal(comp[:4], photo[:4])  # far from the hole: the photo itself
    assert np.array_equal(comp[14:18, 14:18], fill[14:18, 14:18])  # inside: the fill
    assert (photo[11:21, 11:21] == 0).all()  # the hole was undefined (black) for the loss
    assert not list(out.glob(".*.mask.png"))  # the temporary mask is gone


def test_gram_style_loss_against_the_formula():
    vgg = VGG16Features("torchvision")
    torch.manual_seed(0)
    for p in vgg.parameters():
        p.data.normal_(0, 0.05)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    loss = GramStyleLoss(vgg, layers=("conv2_2",), weight=0.5, size=None)
    loss.set_target(y)
    fx = vgg(x, ("conv2_2",))["conv2_2"].flatten(2)
    fy = vgg(y, ("conv2_2",))["conv2_2"].flatten(2)
    gx = torch.einsum("nci,ndi->ncd", fx, fx) / fx.shape[-1]
    gy = torch.einsum("nci,ndi->ncd", fy, fy) / fy.shape[-1]
    expected = 0.5 * ((gx - gy) ** 2).mean(dim=(1, 2))
    terms = loss(x)
    assert torch.allclose(terms["style"], expected, rtol=1e-4)
    assert torch.equal(terms["total"], terms["style"])


def test_local_style_and_scribble_commands(setup, capsys):
    d = setup
    gen = ["-g", d / "tiny.safetensors", "--steps", "4", "--noise-steps", "2", *FAST]
    code, _, err = run_cli(
        ["local-style", d / "img0.png", d / "img1.png", "--mask", d / "left.png",
         "--out", d / "ls", *gen],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    folder = d / "ls" / "img0_in_img1"
    meta = load_latent(folder / "latent.npz").metadata
    assert meta["style_weight"] == pytest.approx(0.05) and meta["style_layers"] == ["conv3_3"]
    kept = np.asarray(Image.open(folder / "mask.png"))  # the metrics measure the content region
    assert kept[:, :10].max() == 0 and kept[:, 22:].min() == 255
    assert Image.open(folder / "local_style.png").size == (4 * 32, 32)

    photo = Image.open(d / "img0.png").convert("RGB")
    edited = photo.copy()
    ImageDraw.Draw(edited).line((4, 16, 28, 16), fill=(255, 0, 0), width=3)
    edited.save(d / "edited.png")
    strokes = np.asarray(scribble_mask(photo, edited))
    assert strokes[16, 4:28].min() == 255 and strokes[:10].max() == 0
    code, _, err = run_cli(["embed", d / "img0.png", "--out", d / "emb", *gen], capsys)
    assert code == 0, err
    code, _, err = run_cli(
        ["scribble", d / "img0.png", d / "edited.png", "--init", d / "emb" / "img0" / "latent.npz",
         "--out", d / "sc", *gen],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    sc = d / "sc" / "edited"
    assert (sc / "scribble.png").is_file() and load_latent(sc / "latent.npz").metadata["init"]
    target = np.asarray(Image.open(sc / "target.png"))
    assert np.array_equal(target, np.asarray(edited))  # the strokes are seen, not blacked out
    code, _, err = run_cli(["scribble", d / "img0.png", d / "img0.png", "--out", d / "x", *gen],
                           capsys)  # fmt: skip
    assert code == 2 and "no scribbles found" in err


def test_application_usage_errors(setup, capsys):
    d = setup
    code, _, err = run_cli(["crossover", d / "img0.png", d / "img1.png", "-g",
                            d / "tiny.safetensors", *FAST], capsys)  # fmt: skip
    assert code == 2 and "--mask is required" in err
    for command in ("inpaint", "crossover", "local-style", "scribble"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and "Image2StyleGAN++ Sec. 7" in out
