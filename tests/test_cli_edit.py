"""End to end: generate, morph, style-transfer, expression, walk on a tiny generator file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.latents import save_latent
from tests.fixtures.stylegan1_fixtures import tiny_stylegan1

RES = 32  # tiny StyleGAN1: 8 ws x 32, 32 x 32 px


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A generator file, four latents recording it, and latents of two other generators."""
    root = tmp_path_factory.mktemp("edit_cli")
    G = tiny_stylegan1(RES, seed=0)
    gen = save_native(G, root / "g.safetensors")
    out = {"G": gen}
    with torch.no_grad():
        ws = G.mapping(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(1)))
    for i, name in enumerate("abcd"):
        out[name] = save_latent(root / f"{name}.npz", ws[i], {"generator": str(gen)})
    # a latent made elsewhere: recorded by a relative path beside the latent
    out["relative"] = save_latent(root / "rel.npz", ws[0], {"generator": "g.safetensors"})
    out["bare"] = save_latent(root / "bare.npz", ws[1])  # no metadata at all
    out["other_num_ws"] = save_latent(root / "six.npz", torch.zeros(6, 32), {"generator": str(gen)})
    out["other_w_dim"] = save_latent(root / "w16.npz", torch.zeros(8, 16), {"generator": str(gen)})
    corrupt = root / "corrupt.npz"
    corrupt.write_bytes((root / "a.npz").read_bytes()[:300])
    out["corrupt"] = corrupt
    return out


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def png(path: Path) -> np.ndarray:
    return iio.imread(path)


def mp4_frames(path: Path) -> tuple[tuple[int, int], int]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return tuple(meta["size"]), sum(1 for _ in reader)


def test_help_lists_the_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("generate", "morph", "style-transfer", "expression", "walk"):
        assert name in out


def test_morph_ends_equal_generate_of_a_and_b(files, tmp_path, capsys):
    code, _, err = run(
        capsys,
        "generate",
        str(files["a"]),
        str(files["b"]),
        "-b",
        "1",
        "--out",
        str(tmp_path / "gen"),
    )
    assert code == 0, err
    code, out, err = run(
        capsys, "morph", str(files["a"]), str(files["b"]), "--frames", "7", "--batch-size", "1",
        "--out", str(tmp_path / "m"), "--json", "-q",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] == 7 and summary["size"] == [RES, RES]
    assert summary["generator"] == str(files["G"])
    frames = sorted((tmp_path / "m").iterdir())
    assert [f.name for f in frames] == [f"frame_{k:04d}.png" for k in range(7)]
    assert np.array_equal(png(frames[0]), png(tmp_path / "gen" / "frame_0000.png"))
    assert np.array_equal(png(frames[-1]), png(tmp_path / "gen" / "frame_0001.png"))
    assert not np.array_equal(png(frames[0]), png(frames[3]))
    strip = png(tmp_path / "m_strip.png")
    assert strip.shape == (RES, 7 * RES, 3)  # 7 frames <= --strip-frames 8: all of them
    assert np.array_equal(strip[:, :RES], png(frames[0]))


def test_morph_video_gif_and_keyframes(files, tmp_path, capsys):
    a, b, c = (str(files[k]) for k in "abc")
    code, _, err = run(
        capsys, "morph", a, b, "--frames", "9", "--out", str(tmp_path / "m.mp4"), "-q"
    )
    assert code == 0, err
    assert mp4_frames(tmp_path / "m.mp4") == ((RES, RES), 9)
    strip = (tmp_path / "m_strip.png").read_bytes()
    assert png(tmp_path / "m_strip.png").shape == (RES, 8 * RES, 3)
    code, _, err = run(
        capsys, "morph", a, b, c, "--frames", "4", "--ping-pong", "--no-strip",
        "--out", str(tmp_path / "m.gif"), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert iio.imread(tmp_path / "m.gif", index=None).shape == (12, RES, RES, 3)  # 7 + 5 back
    assert (tmp_path / "m_strip.png").read_bytes() == strip  # --no-strip: left alone
    code, _, err = run(
        capsys, "morph", a, b, "--strip-frames", "3", "--out", str(tmp_path / "s.png"), "-q"
    )
    assert code == 0, err
    assert png(tmp_path / "s.png").shape == (RES, 3 * RES, 3)


def test_generate_seeds_grid_and_truncation(files, tmp_path, capsys):
    G = str(files["G"])
    code, out, err = run(
        capsys,
        "generate",
        "--generator",
        G,
        "--seeds",
        "0-2,7",
        "-b",
        "1",
        "--out",
        str(tmp_path / "s"),
        "--json",
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png",
    ]  # fmt: skip
    assert len(json.loads(out)["outputs"]) == 4
    # seeds make z as NVIDIA's generate.py does
    G_ = tiny_stylegan1(RES, seed=0)
    z = torch.from_numpy(np.random.RandomState(7).randn(1, G_.z_dim)).float()
    want = ((G_(z) * 127.5 + 128).clamp(0, 255).to(torch.uint8))[0].permute(1, 2, 0).numpy()
    assert np.array_equal(png(tmp_path / "s" / "seed0007.png"), want)
    code, _, err = run(
        capsys, "generate", "--generator", G, "--seeds", "0-3", "--truncation-psi", "0.5",
        "--out", str(tmp_path / "grid.png"), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert png(tmp_path / "grid.png").shape == (2 * RES, 2 * RES, 3)
    # psi = 0 on a latent file renders w̄ whatever the latent
    for name in "ab":
        code, _, err = run(
            capsys, "generate", str(files[name]), "--truncation-psi", "0",
            "--out", str(tmp_path / f"t_{name}.png"), "-q",
        )  # fmt: skip
        assert code == 0, err
    assert np.array_equal(png(tmp_path / "t_a.png"), png(tmp_path / "t_b.png"))


def test_style_transfer_single_and_grid(files, tmp_path, capsys):
    a, b, c = (str(files[k]) for k in "abc")
    code, _, err = run(
        capsys,
        "style-transfer",
        a,
        b,
        "--from-layer",
        "4",
        "-b",
        "1",
        "--out",
        str(tmp_path / "ab.png"),
    )
    assert code == 0, err
    code, out, err = run(
        capsys, "style-transfer", "--grid", "--content", a, "--content", c, "--style", b,
        "--from-layer", "4", "-b", "1", "--out", str(tmp_path / "grid.png"), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["images"] == 2
    grid = png(tmp_path / "grid.png")
    gap = 2
    assert grid.shape == (2 * RES + gap, 3 * RES + gap, 3)
    cell = grid[RES + gap :, RES + gap : 2 * RES + gap]  # style b (row 0) x content a (column 0)
    assert np.array_equal(cell, png(tmp_path / "ab.png"))
    run(capsys, "generate", a, b, "-b", "1", "--out", str(tmp_path / "gen"), "-q")
    assert np.array_equal(
        grid[:RES, RES + gap : 2 * RES + gap], png(tmp_path / "gen" / "frame_0000.png")
    )
    assert np.array_equal(grid[RES + gap :, :RES], png(tmp_path / "gen" / "frame_0001.png"))
    # from-layer 8 = all content layers: the content image itself
    code, _, _ = run(
        capsys,
        "style-transfer",
        a,
        b,
        "--from-layer",
        "8",
        "-b",
        "1",
        "--out",
        str(tmp_path / "a8.png"),
    )
    assert code == 0
    assert np.array_equal(png(tmp_path / "a8.png"), png(tmp_path / "gen" / "frame_0000.png"))


def test_expression_strip_and_summary(files, tmp_path, capsys):
    a, b, c = (str(files[k]) for k in "abc")
    code, out, err = run(
        capsys,
        "expression",
        a,
        b,
        c,
        "--strengths=-2:2:5",
        "-b",
        "1",
        "--out",
        str(tmp_path / "e.png"),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["strengths"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert summary["channel"] == "feature" and summary["channels_total"] == 32
    assert summary["norm_d_thresholded"] <= summary["norm_d"]
    strip = png(tmp_path / "e.png")
    assert strip.shape == (RES, 5 * RES, 3)
    run(capsys, "generate", a, "--out", str(tmp_path / "target.png"), "-q")
    assert np.array_equal(strip[:, 2 * RES : 3 * RES], png(tmp_path / "target.png"))  # λ = 0
    code, _, err = run(
        capsys, "expression", a, b, c, "--strengths", "-1,1", "--channel", "layer",
        "--out", str(tmp_path / "e"), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert len(list((tmp_path / "e").iterdir())) == 2


def test_walk_video_and_strip(files, tmp_path, capsys):
    code, out, err = run(
        capsys, "walk", str(files["a"]), "--frames", "6", "--perturbation", "0.3", "--seed", "3",
        "--out", str(tmp_path / "w.mp4"), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["frames"] == 6
    assert mp4_frames(tmp_path / "w.mp4") == ((RES, RES), 6)
    assert png(tmp_path / "w_strip.png").shape == (RES, 6 * RES, 3)
    code, _, err = run(  # the folder's strip is w_strip.png too: replaced only when told
        capsys, "walk", str(files["a"]), "--frames", "4", "-b", "1", "--out", str(tmp_path / "w")
    )
    assert code == 2 and "w_strip.png' exists; pass --overwrite" in err
    code, _, err = run(
        capsys, "walk", str(files["a"]), "--frames", "4", "-b", "1", "--out", str(tmp_path / "w"),
        "--overwrite",
    )  # fmt: skip
    assert code == 0, err
    run(capsys, "generate", str(files["a"]), "--out", str(tmp_path / "a.png"), "-q")
    assert np.array_equal(png(tmp_path / "w" / "frame_0000.png"), png(tmp_path / "a.png"))
    run(
        capsys,
        "generate",
        str(files["a"]),
        "--truncation-psi",
        "0",
        "--out",
        str(tmp_path / "mean.png"),
        "-q",
    )
    assert np.array_equal(png(tmp_path / "w" / "frame_0003.png"), png(tmp_path / "mean.png"))


def test_generator_from_metadata_relative_and_explicit(files, tmp_path, capsys):
    code, _, err = run(
        capsys, "generate", str(files["relative"]), "--out", str(tmp_path / "r.png"), "-q"
    )
    assert code == 0, err
    code, _, err = run(
        capsys, "generate", str(files["bare"]), "--out", str(tmp_path / "x.png"), "-q"
    )
    assert code == 2 and "records no generator" in err and "--generator" in err
    code, _, err = run(
        capsys,
        "generate",
        str(files["bare"]),
        "-g",
        str(files["G"]),
        "--out",
        str(tmp_path / "x.png"),
        "-q",
    )
    assert code == 0, err


# --- bad inputs: one clear line, the right exit code, nothing written -------------------------


def _check_failure(capsys, tmp_path, code_wanted: int, pattern: str, *args: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    code, _, err = run(capsys, *args, "--quiet")
    assert code == code_wanted, (code, err)
    assert pattern in err, err
    assert "Traceback" not in err
    if code_wanted == 1:
        assert len(err.strip().splitlines()) == 1, err
    assert sorted(tmp_path.rglob("*")) == before  # no output, no temporary leftovers


@pytest.mark.parametrize("bad", ["other_num_ws", "other_w_dim"])
def test_latent_from_another_generator(files, tmp_path, capsys, bad):
    for args in (
        ["morph", str(files["a"]), str(files[bad]), "--out", str(tmp_path / "m.mp4")],
        [
            "expression",
            str(files["a"]),
            str(files["b"]),
            str(files[bad]),
            "--out",
            str(tmp_path / "e.png"),
        ],
        ["generate", str(files[bad]), "--out", str(tmp_path / "g.png")],
    ):
        _check_failure(capsys, tmp_path, 1, "it was made with a different generator", *args)


def test_corrupt_and_pickled_latents(files, tmp_path, capsys):
    _check_failure(
        capsys, tmp_path, 1, "corrupt.npz", "morph", str(files["a"]), str(files["corrupt"]),
        "--out", str(tmp_path / "m.gif"),
    )  # fmt: skip
    marker = tmp_path.parent / f"{tmp_path.name}_payload_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path.parent / f"{tmp_path.name}_evil.npz"
    np.savez(evil, w=np.zeros((1, 8, 32), np.float32), extra=np.array([Payload()], dtype=object))
    with zipfile.ZipFile(evil) as z:
        assert b"builtins" in z.read("extra.npy") or b"io" in z.read("extra.npy")
    _check_failure(
        capsys, tmp_path, 1, "pickled Python objects", "style-transfer", str(evil), str(files["a"]),
        "--out", str(tmp_path / "s.png"),
    )  # fmt: skip
    assert not marker.exists()


def test_unwritable_output(files, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    a, b, c = (str(files[k]) for k in "abc")
    for args in (
        ["morph", a, b, "--out", str(blocker / "m.mp4")],
        ["morph", a, b, "--out", str(blocker / "frames")],
        ["walk", a, "--out", str(blocker / "w.gif")],
        ["expression", a, b, c, "--out", str(blocker / "e.png")],
        ["style-transfer", a, b, "--out", str(blocker / "s.png")],
        ["generate", a, "--out", str(blocker / "g.png")],
        ["generate", a, "--out", str(blocker / "gdir")],
    ):
        _check_failure(capsys, tmp_path, 1, "a_file", *args)


def test_usage_errors(files, tmp_path, capsys):
    a, b, c = (str(files[k]) for k in "abc")
    for pattern, args in [
        (
            "start:stop:count",
            ["expression", a, b, c, "--strengths=1:2", "--out", str(tmp_path / "e.png")],
        ),
        ("unsupported output", ["morph", a, b, "--out", str(tmp_path / "m.avi")]),
        ("at least two", ["morph", a, "--out", str(tmp_path / "m.mp4")]),
        (
            "beyond the generator",
            ["style-transfer", a, b, "--from-layer", "9", "--out", str(tmp_path / "s.png")],
        ),
        ("either --seeds or latent", ["generate", "--out", str(tmp_path / "g.png")]),
        (
            "expected seeds",
            ["generate", "-g", str(files["G"]), "--seeds", "3-1", "--out", str(tmp_path / "g")],
        ),
        ("this command writes", ["style-transfer", a, b, "--out", str(tmp_path / "s.mp4")]),
    ]:
        _check_failure(capsys, tmp_path, 2, pattern, *args)


def test_stylegan2_generator_morph_and_mismatch(files, tmp_path, capsys):
    """The commands only use the Generator API: a StyleGAN2 file works the same way, and the
    StyleGAN1 latents (w_dim 32) are refused for it (w_dim 16)."""
    from tests.fixtures.stylegan2_fixtures import tiny_stylegan2

    G2 = tiny_stylegan2(RES, seed=0)
    gen = save_native(G2, tmp_path / "g2.safetensors")
    with torch.no_grad():
        ws = G2.mapping(torch.randn(2, G2.z_dim, generator=torch.Generator().manual_seed(4)))
    a = save_latent(tmp_path / "a2.npz", ws[0], {"generator": str(gen)})
    b = save_latent(tmp_path / "b2.npz", ws[1], {"generator": str(gen)})
    code, _, err = run(
        capsys,
        "morph",
        str(a),
        str(b),
        "--frames",
        "3",
        "-b",
        "1",
        "--out",
        str(tmp_path / "m"),
        "-q",
    )
    assert code == 0, err
    code, _, err = run(capsys, "generate", str(b), "--out", str(tmp_path / "b.png"), "-q")
    assert code == 0, err
    assert np.array_equal(png(tmp_path / "m" / "frame_0002.png"), png(tmp_path / "b.png"))
    code, _, err = run(
        capsys,
        "morph",
        str(files["a"]),
        str(files["b"]),
        "-g",
        str(gen),
        "--out",
        str(tmp_path / "x.gif"),
        "-q",
    )
    assert code == 1 and "different generator" in err
    assert not (tmp_path / "x.gif").exists()
