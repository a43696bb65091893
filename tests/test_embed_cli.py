"""`image2stylegan embed` end to end: output layout, skip/resume, batches, bad inputs, alignment.

Runs in-process on a tiny StyleGAN2 saved in our native format, with random VGG weights and a
handful of steps; the shared photos (../shared/images) exercise the real-image paths.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import zlib
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from image2stylegan import load_latent
from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.embed import EmbedConfig, RunOptions, build_embedder
from image2stylegan.embed.records import read_metrics_csv
from image2stylegan.embed.runner import CHECKPOINT_NAME, embed_files, plan_jobs

from .fixtures.embedding import embedding_generator

FAST = ["--vgg", "random", "--perceptual-size", "16", "--lr", "0.05", "--quiet"]


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "tiny.safetensors"
    save_native(embedding_generator(32), path, source="test")
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_outputs_per_image(gen_file, shared_images, tmp_path, capsys):
    out = tmp_path / "emb"
    args = [
        "embed",
        shared_images / "face_01.jpg",
        shared_images / "cat_01.jpg",
        "-g",
        gen_file,
        "--out",
        out,
        "--steps",
        "6",
        "--batch-size",
        "2",
        "--json",
        *FAST,
    ]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert [o["status"] for o in summary["outputs"]] == ["done", "done"]
    for stem in ("face_01", "cat_01"):
        folder = out / stem
        with np.load(folder / "latent.npz", allow_pickle=False) as data:
            assert data["w"].shape == (1, 8, 16) and data["w"].dtype == np.float32
            meta = json.loads(str(data["metadata"]))
        assert meta["generator"] == str(gen_file) and len(meta["generator_sha256"]) == 64
        assert meta["image"] == f"{stem}.jpg" and len(meta["image_sha256"]) == 64
        assert meta["steps"] == 6 and meta["space"] == "w+" and meta["vgg"] == "random"
        assert set(meta["final_loss"]) >= {"total", "perceptual", "mse"}
        assert meta["w_dist_to_mean"] > 0 and meta["version"]
        assert Image.open(folder / "target.png").size == (32, 32)
        assert Image.open(folder / "reconstruction.png").size == (32, 32)
        with open(folder / "losses.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["step"]) for r in rows] == list(range(1, 7))
        assert set(rows[0]) == {"step", "total", "perceptual", "mse", "elapsed_s"}
        assert not (folder / CHECKPOINT_NAME).exists()
    # the target is what the loss saw: the reconstruction's loss is reported against it
    target = np.asarray(Image.open(out / "face_01" / "target.png"))
    assert target.shape == (32, 32, 3)

    # a second run skips finished images; --overwrite redoes them
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0 and {o["status"] for o in json.loads(stdout)["outputs"]} == {"skipped"}
    code, stdout, _ = run_cli([*args, "--overwrite"], capsys)
    assert {o["status"] for o in json.loads(stdout)["outputs"]} == {"done"}


def _write_bad_inputs(folder: Path, shared: Path) -> dict[str, str | None]:
    """name -> expected error fragment (None: must embed fine)."""
    (folder / "empty.jpg").write_bytes(b"")
    data = (shared / "cat_01.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.png").write_text("this is not an image\n")
    rgb = Image.open(shared / "cat_01.jpg").convert("RGB").resize((64, 48))
    rgb.convert("L").save(folder / "gray.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "rgba.png")
    a16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    deep = Image.fromarray(a16)
    assert deep.mode.startswith("I;16")
    deep.save(folder / "deep16.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    Image.new("RGB", (1, 1)).save(folder / "tiny.png")
    (folder / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    (folder / "locked.png").write_bytes((folder / "gray.png").read_bytes())
    return {
        "empty": "empty",
        "truncated": "truncated",
        "notes": "not an image",
        "gray": None,
        "rgba": None,
        "deep16": None,
        "cmyk": None,
        "tiny": "1x1",
        "bomb": "decompression bomb",
        "locked": "permission denied",
    }


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels and carries almost no data (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_bad_inputs_fail_alone(gen_file, shared_images, tmp_path, capsys, monkeypatch):
    inputs = tmp_path / "in"
    inputs.mkdir()
    expected = _write_bad_inputs(inputs, shared_images)
    # Tests run as root, where chmod 000 does not stop reading: make the OS refuse instead.
    real_open = open

    def guarded_open(file, *a, **kw):
        if Path(str(file)).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr("builtins.open", guarded_open)
    out = tmp_path / "emb"
    code, stdout, err = run_cli(
        [
            "embed",
            inputs,
            "-g",
            gen_file,
            "--out",
            out,
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--json",
            *FAST,
        ],
        capsys,
    )
    assert code == 1
    outcomes = {Path(o["source"]).stem: o for o in json.loads(stdout)["outputs"]}
    assert set(outcomes) == set(expected)
    for name, fragment in expected.items():
        o = outcomes[name]
        if fragment is None:
            assert o["status"] == "done", (name, o)
            assert (out / name / "latent.npz").exists()
        else:
            assert o["status"] == "failed", name
            assert fragment in o["error"] and name in o["error"], (name, o["error"])
            assert not (out / name / "latent.npz").exists()
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 6 and all("\n" not in line for line in error_lines)
    assert "6 of 10 inputs failed" in err


def test_resume_after_interruption_matches_uninterrupted_run(gen_file, shared_images, tmp_path):
    from image2stylegan import load_generator, load_vgg16

    G = load_generator(gen_file)
    cfg = EmbedConfig(steps=30, lr=0.05, perceptual_size=16, noise="resample", init="random")
    vgg = load_vgg16("random")
    sources = [shared_images / "face_02.jpg", shared_images / "dog_01.jpg"]
    kwargs = dict(
        options=RunOptions(batch_size=2, checkpoint_every=10, report_every=5),
        record={"generator": "tiny"},
    )

    ref = embed_files(plan_jobs(sources, tmp_path / "ref"), build_embedder(G, cfg, vgg), **kwargs)
    assert {o.status for o in ref} == {"done"}

    def interrupt(progress):
        if progress.report.step == 25:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        embed_files(
            plan_jobs(sources, out), build_embedder(G, cfg, vgg), on_report=interrupt, **kwargs
        )
    ckpt = torch.load(out / "face_02" / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["state"]["step"] == 25  # the work since the last checkpoint was kept
    assert not (out / "face_02" / "latent.npz").exists()

    resumed = embed_files(plan_jobs(sources, out), build_embedder(G, cfg, vgg), **kwargs)
    assert {o.status for o in resumed} == {"done"}
    for stem in ("face_02", "dog_01"):
        a, b = (
            load_latent(tmp_path / "ref" / stem / "latent.npz"),
            load_latent(out / stem / "latent.npz"),
        )
        assert torch.equal(a.w, b.w)
        assert (out / stem / "losses.csv").read_text().count("\n") == 31
        assert not (out / stem / CHECKPOINT_NAME).exists()

    # a checkpoint made with other settings is not silently resumed
    shutil.rmtree(out / "dog_01")
    with pytest.raises(KeyboardInterrupt):
        embed_files(
            plan_jobs(sources[1:], out), build_embedder(G, cfg, vgg), on_report=interrupt, **kwargs
        )
    other = build_embedder(G, cfg.replace(lr=0.02), vgg)
    outcome = embed_files(plan_jobs(sources[1:], out), other, **kwargs)[0]
    assert outcome.status == "failed" and "--overwrite" in outcome.error


def test_spaces_video_and_init_file(gen_file, shared_images, tmp_path, capsys):
    out = tmp_path / "z"
    code, _, err = run_cli(
        [
            "embed",
            shared_images / "car_02.jpg",
            "-g",
            gen_file,
            "--out",
            out,
            "--steps",
            "4",
            "--space",
            "z",
            "--video",
            "--video-every",
            "2",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    latent = load_latent(out / "car_02" / "latent.npz")
    assert latent.extras["z"].shape == (1, 16) and latent.metadata["space"] == "z"
    reader = imageio_ffmpeg.read_frames(str(out / "car_02" / "progress.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (32, 32) and sum(1 for _ in reader) == 2
    assert not (out / "car_02" / ".progress").exists()

    out2 = tmp_path / "w"
    code, _, err = run_cli(
        [
            "embed",
            shared_images / "car_02.jpg",
            "-g",
            gen_file,
            "--out",
            out2,
            "--steps",
            "0",
            "--init",
            out / "car_02" / "latent.npz",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    assert torch.equal(load_latent(out2 / "car_02" / "latent.npz").w, latent.w)


def test_align_option(gen_file, shared_images, tmp_path, capsys):
    out = tmp_path / "aligned"
    code, stdout, _ = run_cli(
        [
            "embed",
            shared_images / "face_03.jpg",
            shared_images / "car_01.jpg",
            "-g",
            gen_file,
            "--out",
            out,
            "--steps",
            "1",
            "--align",
            "--json",
            *FAST,
        ],
        capsys,
    )
    assert code == 1
    outcomes = {Path(o["source"]).stem: o for o in json.loads(stdout)["outputs"]}
    assert outcomes["face_03"]["status"] == "done"
    assert outcomes["car_01"]["status"] == "failed" and "no face" in outcomes["car_01"]["error"]
    assert load_latent(out / "face_03" / "latent.npz").metadata["aligned"] is True


def test_usage_errors(gen_file, shared_images, tmp_path, capsys):
    code, _, err = run_cli(
        ["embed", shared_images / "face_01.jpg", "-g", gen_file, "--space", "q"], capsys
    )
    assert code == 2 and "--space" in err
    code, _, err = run_cli(
        [
            "embed",
            shared_images / "face_01.jpg",
            "-g",
            gen_file,
            "--perceptual-size",
            "tiny",
            *FAST[:2],
        ],
        capsys,
    )
    assert code == 2 and "full" in err
    code, _, err = run_cli(
        [
            "embed",
            tmp_path / "missing.jpg",
            "-g",
            gen_file,
            "--out",
            tmp_path / "o",
            "--steps",
            "1",
            *FAST,
        ],
        capsys,
    )
    assert code == 1 and "no such file" in err
    code, _, err = run_cli(
        ["embed", shared_images / "face_01.jpg", "-g", tmp_path / "nope.pkl"], capsys
    )
    assert code == 1 and "nope.pkl" in err and err.count("\n") == 1


def test_torchrun_ranks_split_the_images(gen_file, shared_images, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    names = ["face_01", "face_02", "cat_01", "dog_01"]
    out = tmp_path / "ranked"
    code, _, err = run_cli(
        [
            "embed",
            *(shared_images / f"{n}.jpg" for n in names),
            "-g",
            gen_file,
            "--out",
            out,
            "--steps",
            "1",
            "--json",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    done = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert done == ["dog_01", "face_02"]  # rank 1 of 2 takes images 1 and 3
    assert sorted(read_metrics_csv(out / "metrics.csv")) == ["dog_01", "face_02"]


def test_cuda_without_cuda_is_a_usage_error(gen_file, shared_images, capsys, monkeypatch):
    from image2stylegan.devices import resolve_device
    from image2stylegan.web.workspace import Workspace

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(None) == "cpu"
    code, _, err = run_cli(
        ["embed", shared_images / "face_01.jpg", "-g", gen_file, "--device", "cuda"], capsys
    )
    assert code == 2 and "CUDA is not available" in err and "--device" in err
    with pytest.raises(ValueError, match="CUDA is not available"):  # the web UI's twin path
        Workspace(device="cuda:1")
