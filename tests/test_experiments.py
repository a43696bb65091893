"""`image2stylegan experiment NAME` end to end, every experiment, on a tiny StyleGAN2 saved in our
native format, random VGG weights, 2-3 steps and a few of the shared photos.

What is checked: exit code, results.csv present and parsed, every PNG figure the report links
decodes and is not blank, the report prints the paper's numbers (or says the paper has none)
beside ours with the exact command; re-running reuses finished embeddings; changed settings in
the same folder are refused; usage errors exit 2.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.experiments import EXPERIMENTS

from .fixtures.embedding import embedding_generator

FAST = ["--vgg", "random", "--perceptual-size", "16", "--steps", "2", "-b", "16", "--quiet"]

# experiment -> (images, extra args, strings the report must contain)
CASES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "affine": (["face_04"], [], ["0.782", "48.56", "0.225", "38.04", "= 4 px here"]),
    # --align: faces are FFHQ-aligned, the cat only fitted (it has no face to align)
    "init": (
        ["face_04", "cat_01"],
        ["--align"],
        ["0.309", "30.67", "0.752", "| align | yes |", "| init | varied by the experiment"],
    ),
    "defects": (
        ["face_02", "face_05"],
        ["--align"],
        ["0.204", "29.19", "39.62", "face_02 ← face_05"],
    ),
    "space": (["face_04", "cat_01"], [], ["images only", "W+, w̄ init"]),
    "random-generator": (["face_04"], [], ["images only", "random weights"]),
    "loss-ablation": (["face_04", "car_01"], [], ["conv3_2 only", "images only"]),
    "convergence": (
        ["face_04", "cat_01", "painting_01"],
        ["--steps", "3"],
        ["1000", "3000", "5000", "not comparable"],
    ),
    "iterative": (["face_04"], ["-p", "rounds=2"], ["images only", "round"]),
    "perceptual-size": (["face_04"], [], ["images only", "16 x 16 (resized)"]),
    "noise": (["face_04"], ["-p", "restarts=2"], ["images only", "restart_1", "resample"]),
    "distances": (["face_04", "face_05", "cat_01", "cat_02"], [], ["heat map only"]),
    "random-walk": (["face_04"], ["-p", "frames=5", "-p", "strip_frames=3"], ["videos"]),
    "noise-space": (
        ["face_04"],
        ["-p", "noise_steps=2"],
        ["19 to 22 dB", "39 to 45 dB", "from 20 dB to 45 dB", "W+ then noise (sequential)"],
    ),
}


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "tiny.safetensors"
    save_native(embedding_generator(32), path, source="test")
    return path


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _args(name: str, gen_file: Path, shared: Path, out: Path, images: list[str], extra: list):
    paths = [shared / f"{stem}.jpg" for stem in images]
    return ["experiment", name, "--generator", gen_file, "--images", *paths, "--out", out,
            *FAST, *extra]  # fmt: skip


def _check_figures(out: Path, report: str) -> list[Path]:
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert links, "the report links no figure"
    for link in links:
        path = out / link
        assert path.is_file() and path.stat().st_size > 0, link
        with Image.open(path) as im:
            im.load()
            a = np.asarray(im.convert("RGB"))
        assert a.shape[0] > 50 and a.shape[1] > 50
        assert a.std() > 5, f"{link} is blank"
    return [out / link for link in links]


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    return rows


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_end_to_end(name, gen_file, shared_images, tmp_path, capsys):
    images, extra, expected = CASES[name]
    out = tmp_path / name
    code, _, err = run_cli(_args(name, gen_file, shared_images, out, images, extra), capsys)
    assert code == 0, err
    report = (out / "report.md").read_text()
    rows = _rows(out)
    _check_figures(out, report)
    for text in expected:
        assert text in report, f"{text!r} missing from the {name} report"
    # the exact command and the settings are in the report, and it says this is not the paper's
    assert f"image2stylegan experiment {name} --images" in report
    assert "--vgg random" in report and "--steps" in report
    assert "Not the paper's setting" in report and "vgg16-caffe" in report
    assert "## Results" in report and "| steps |" in report
    assert "Failures" not in report
    if name != "random-walk":
        assert {"variant", "image", "category", "loss", "loss_e5", "w_dist"} <= set(rows[0])
        assert all(r["status"] == "done" for r in rows)
        assert all(float(r["loss"]) > 0 and float(r["w_dist"]) >= 0 for r in rows)
        assert {r["image"] for r in rows} == set(images)
    else:
        assert {"frame", "dist_to_mean", "mse_to_input"} <= set(rows[0])
        assert [int(r["frame"]) for r in rows] == list(range(5))
        assert float(rows[-1]["dist_to_mean"]) == pytest.approx(0.0, abs=1e-6)
        assert (out / "walk" / "face_04.mp4").stat().st_size > 0


def test_every_experiment_is_tested():
    assert set(CASES) == set(EXPERIMENTS)


def test_rerun_reuses_finished_embeddings(gen_file, shared_images, tmp_path, capsys):
    out = tmp_path / "init"
    args = _args("init", gen_file, shared_images, out, ["face_04", "cat_01"], [])
    assert run_cli(args, capsys)[0] == 0
    latents = sorted(out.glob("embeddings/*/*/latent.npz"))
    assert len(latents) == 4
    stamps = {p: p.stat().st_mtime_ns for p in latents}
    first = (out / "results.csv").read_text()

    assert run_cli(args, capsys)[0] == 0
    assert {r["status"] for r in _rows(out)} == {"reused"}
    assert {p: p.stat().st_mtime_ns for p in latents} == stamps
    strip = [line.rsplit(",", 2)[0] for line in first.splitlines()]
    again = [line.rsplit(",", 2)[0] for line in (out / "results.csv").read_text().splitlines()]
    assert again[1:] == [s.replace(",done", ",reused") for s in strip[1:]]  # same numbers

    # an interrupted run (one embedding missing) redoes only that one
    (out / "embeddings" / "random" / "cat_01" / "latent.npz").unlink()
    assert run_cli(args, capsys)[0] == 0
    status = {(r["variant"], r["image"]): r["status"] for r in _rows(out)}
    assert status.pop(("random", "cat_01")) == "done"
    assert set(status.values()) == {"reused"}

    # other settings into the same folder are refused (one line, exit 1) unless --overwrite
    changed = [*args, "--lr", "0.02"]
    code, _, err = run_cli(changed, capsys)
    assert code == 1 and "other settings" in err and "Traceback" not in err
    code, _, _ = run_cli([*changed, "--overwrite"], capsys)
    assert code == 0 and {r["status"] for r in _rows(out)} == {"done"}


def test_failed_inputs_are_reported_and_the_rest_runs(gen_file, shared_images, tmp_path, capsys):
    bad = tmp_path / "face_99.jpg"
    bad.write_text("not an image")
    out = tmp_path / "affine"
    args = ["experiment", "affine", "--generator", gen_file, "--images",
            shared_images / "face_04.jpg", bad, "--out", out, *FAST]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "face_99.jpg" in err and "Traceback" not in err
    report = (out / "report.md").read_text()
    assert "## Failures" in report and "face_99" in report
    assert {r["image"] for r in _rows(out)} == {"face_04"}


def test_usage_errors_and_list(gen_file, shared_images, tmp_path, capsys):
    img = shared_images / "face_04.jpg"
    code, _, err = run_cli(["experiment", "nonsense", "--images", img], capsys)
    assert code == 2 and "nonsense" in err
    code, _, err = run_cli(
        ["experiment", "affine", "-g", gen_file, "--images", img, "-p", "zoomz=2"], capsys
    )
    assert code == 2 and "zoomz" in err
    code, _, err = run_cli(["experiment", "affine", "-g", gen_file], capsys)
    assert code == 2 and "--images" in err
    code, out, _ = run_cli(["experiment", "--list"], capsys)
    assert code == 0
    for name in EXPERIMENTS:
        assert name in out
    assert "--param rounds=" in out
    code, out, _ = run_cli(["experiment", "--help"], capsys)
    assert code == 0 and "Table 1, Fig. 2" in out
