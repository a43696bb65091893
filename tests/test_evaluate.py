"""`image2stylegan evaluate`: the metrics of embedding runs as mean ± std per category, read from
the latent metadata or measured from the PNGs; metrics.csv of a run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from image2stylegan import load_latent
from image2stylegan import metrics as M
from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.experiments.evaluation import collect_run

from .fixtures.embedding import embedding_generator

FAST = ["--vgg", "random", "--perceptual-size", "16", "--lr", "0.05", "--quiet", "--steps", "3"]
IMAGES = ("face_01.jpg", "face_02.jpg", "cat_01.jpg")


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_images):
    d = tmp_path_factory.mktemp("eval")
    gen = d / "tiny.safetensors"
    save_native(embedding_generator(32), gen, source="test")
    photos = [shared_images / n for n in IMAGES]
    for name, extra in (
        ("plain", []),
        ("noise", ["--noise-steps", "3"]),
        ("old", ["--no-metrics"]),
    ):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in ["embed", *photos, "-g", gen, "--out", d / name, *FAST, *extra]])
        assert exc.value.code == 0
    return d


def test_every_run_writes_metrics_csv_and_metadata(runs):
    rows = list(csv.DictReader((runs / "plain" / "metrics.csv").read_text().splitlines()))
    assert [r["image"] for r in rows] == ["cat_01", "face_01", "face_02"]
    assert {"psnr", "ssim", "mse", "time_s"} <= set(rows[0])
    folder = runs / "plain" / "face_01"
    meta = load_latent(folder / "latent.npz").metadata["metrics"]
    assert float(rows[1]["psnr"]) == pytest.approx(meta["psnr"], rel=1e-5)
    t, r = Image.open(folder / "target.png"), Image.open(folder / "reconstruction.png")
    assert meta["psnr"] == pytest.approx(M.psnr(t, r), abs=1e-9)
    assert meta["ssim"] == pytest.approx(M.ssim(t, r), abs=1e-12)
    assert "id" in meta and -1 <= meta["id"] <= 1  # a face: dlib's descriptor similarity
    cat = load_latent(runs / "plain" / "cat_01" / "latent.npz").metadata["metrics"]
    assert "id" not in cat  # no face found in the target
    assert not (runs / "old" / "metrics.csv").exists()
    assert "metrics" not in load_latent(runs / "old" / "face_01" / "latent.npz").metadata


def test_evaluate_table_mean_and_std_per_category(runs, capsys, tmp_path):
    out = tmp_path / "table.csv"
    code, text, err = run_cli(
        ["evaluate", runs / "plain", runs / "noise", "--out", out, "--no-lpips"], capsys
    )
    assert code == 0, err
    assert "PSNR (dB) ↑" in text and "| face | 2 |" in text.replace(runs.as_posix(), "")
    table = list(csv.DictReader(out.read_text().splitlines()))
    plain_face = next(r for r in table if r["run"].endswith("plain") and r["category"] == "face")
    psnrs = [load_latent(runs / "plain" / n / "latent.npz").metadata["metrics"]["psnr"]
             for n in ("face_01", "face_02")]  # fmt: skip
    assert float(plain_face["psnr_mean"]) == pytest.approx(np.mean(psnrs), rel=1e-5)
    assert float(plain_face["psnr_std"]) == pytest.approx(np.std(psnrs, ddof=1), rel=1e-4)
    categories = [r["category"] for r in table if r["run"].endswith("noise")]
    assert categories == ["face", "cat", "all"]  # the paper's order, then all images


def test_evaluate_measures_runs_without_metrics(runs, capsys):
    code, text, err = run_cli(["evaluate", runs / "old", "--json", "--no-lpips"], capsys)
    assert code == 0, err
    images = json.loads(text)["runs"][0]["images"]
    assert all(im["recomputed"] for im in images) and len(images) == 3
    measured = collect_run(runs / "plain", recompute=True)
    recorded = collect_run(runs / "plain")
    for a, b in zip(measured.images, recorded.images, strict=True):
        assert a.metrics["psnr"] == pytest.approx(b.metrics["psnr"], abs=1e-9)


def test_evaluate_errors(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", tmp_path], capsys)
    assert code == 1 and "no embeddings found" in err
    code, _, err = run_cli(["evaluate", tmp_path, "--out", tmp_path / "t.txt"], capsys)
    assert code == 2 and ".md or .csv" in err
    code, _, err = run_cli(["evaluate", tmp_path / "missing"], capsys)
    assert code == 2


def test_a_folder_of_runs_is_split_into_its_runs(runs, capsys):
    code, text, err = run_cli(["evaluate", runs, "--no-lpips", "--json"], capsys)
    assert code == 0, err
    labels = sorted(r["run"].rsplit("/", 1)[-1] for r in json.loads(text)["runs"])
    assert labels == ["noise", "old", "plain"]
