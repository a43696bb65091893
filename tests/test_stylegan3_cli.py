"""StyleGAN3 through the command line: `generate --translate/--rotate` as NVIDIA's gen_images.py,
embedding (W+) and the editing commands on StyleGAN3 latents, which have no noise inputs.

The translate/rotate reference is NVIDIA's own: tests/data/stylegan3_t32_ref.npz's
`img_translated` is the synthesis of `wplus` by NVlabs/stylegan3 @ c233a919 after gen_images.py's
`--translate 0.2,-0.15 --rotate 10` set the input transform (tests/data/README.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.image import tensor_to_uint8
from image2stylegan.latents import load_latent, save_latent

TINY = "random:stylegan3-t-16"


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """One tiny StyleGAN3-T in our format, shared by the module's tests."""
    from image2stylegan.checkpoints import load_generator

    path = tmp_path_factory.mktemp("sg3") / "t16.safetensors"
    save_native(load_generator(TINY), path, source=TINY)
    return path


def test_translate_rotate_match_nvidia(data_dir, tmp_path, capsys):
    ref = {k: torch.from_numpy(v) for k, v in np.load(data_dir / "stylegan3_t32_ref.npz").items()}
    latent = save_latent(tmp_path / "w.npz", ref["wplus"][:1])
    out = tmp_path / "moved.png"
    args = ["generate", latent, "-g", data_dir / "stylegan3_t32.pkl", "--out", out]
    code, stdout, err = run_cli([*args, "--translate", "0.2,-0.15", "--rotate", "10", "--json"],
                                capsys)  # fmt: skip
    assert code == 0, err
    expected = tensor_to_uint8(ref["img_translated"][:1])[0].astype(np.int16)
    diff = np.abs(_pixels(out) - expected)
    assert diff.max() <= 1  # NVIDIA's float image, quantised; float noise may flip one level
    summary = json.loads(stdout)
    assert summary["transform"] == {"translate": [0.2, -0.15], "rotate": 10.0}
    assert summary["noise_mode"].startswith("none")

    # without the options the stored (non-identity) transform is used: a different image
    plain = tmp_path / "plain.png"
    assert run_cli(["generate", latent, "-g", data_dir / "stylegan3_t32.pkl", "--out", plain,
                    "-q"], capsys)[0] == 0  # fmt: skip
    assert np.abs(_pixels(plain) - expected).max() > 10


def test_zero_transform_is_identity(tiny_file, tmp_path, capsys):
    """The tiny network stores the identity: --translate 0,0 --rotate 0 changes nothing, a
    shift moves the picture."""
    outs = {}
    for name, extra in {
        "plain": [],
        "zero": ["--translate", "0,0", "--rotate", "0"],
        "moved": ["--translate", "0.25,0"],
    }.items():
        outs[name] = tmp_path / f"{name}.png"
        code, _, err = run_cli(["generate", "-g", tiny_file, "--seeds", "5", "--out",
                                outs[name], "-q", *extra], capsys)  # fmt: skip
        assert code == 0, err
    assert np.array_equal(_pixels(outs["plain"]), _pixels(outs["zero"]))
    assert np.abs(_pixels(outs["plain"]) - _pixels(outs["moved"])).mean() > 1  # ~4 levels measured


@pytest.mark.parametrize(
    ("generator", "extra", "message"),
    [
        ("random:stylegan2-32", ["--rotate", "10"], "need a StyleGAN3 generator"),
        (TINY, ["--translate", "0.1"], "is not two numbers X,Y"),
        (TINY, ["--translate", "nan,0"], "must be finite"),
        (TINY, ["--rotate", "inf"], "'--rotate'"),
    ],
)
def test_transform_option_errors(generator, extra, message, tmp_path, capsys):
    code, _, err = run_cli(["generate", "-g", generator, "--seeds", "0", "--out",
                            tmp_path / "x.png", *extra], capsys)  # fmt: skip
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "x.png").exists()


def test_embed_and_edit_stylegan3(tiny_file, tmp_path, capsys):
    """Known-latent recovery on StyleGAN3 (W+), then morph and style transfer on the result;
    noise stages say that StyleGAN3 has none."""
    target = tmp_path / "target.png"
    assert run_cli(["generate", "-g", tiny_file, "--seeds", "3", "--out", target, "-q"],
                   capsys)[0] == 0  # fmt: skip
    out = tmp_path / "emb"
    args = ["embed", target, "-g", tiny_file, "--vgg", "random", "--perceptual-size", "32",
            "--out", out, "--json", "-q"]  # fmt: skip
    code, stdout, err = run_cli([*args, "--steps", "12"], capsys)
    assert code == 0, err
    (record,) = json.loads(stdout)["outputs"]
    assert record["status"] == "done"
    losses = np.genfromtxt(out / "target" / "losses.csv", delimiter=",", names=True)
    assert losses["total"][-1] < 0.5 * losses["total"][0]  # the loss falls
    latent = load_latent(out / "target" / "latent.npz")
    from image2stylegan.checkpoints import load_generator

    G = load_generator(tiny_file)
    assert latent.w.shape == (1, G.num_ws, G.w_dim) and G.num_ws == 16  # W+ of StyleGAN3-T

    code, _, err = run_cli([*args, "--steps", "2", "--noise-steps", "2", "--overwrite"], capsys)
    assert code != 0 and "no noise inputs" in err

    lat = out / "target" / "latent.npz"
    code, stdout, err = run_cli(["morph", lat, lat, "--frames", "2", "--out",
                                 tmp_path / "m.gif", "--json", "-q"], capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["noise"].startswith("none")
    code, _, err = run_cli(["style-transfer", lat, lat, "--from-layer", "5", "--out",
                            tmp_path / "s.png", "-q"], capsys)  # fmt: skip
    assert code == 0, err
    assert Image.open(tmp_path / "s.png").size == (16, 16)


@pytest.mark.parametrize("name", ["noise", "noise-space"])
def test_noise_experiments_refuse_stylegan3(name, tiny_file, shared_images, tmp_path, capsys):
    """The experiments that vary the noise inputs end in one line on a network without any."""
    code, _, err = run_cli(["experiment", name, shared_images / "cat_01.jpg", "-g", tiny_file,
                            "--vgg", "random", "--steps", "2", "--out", tmp_path / "x", "-q"],
                           capsys)  # fmt: skip
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no noise inputs" in lines[0], err
