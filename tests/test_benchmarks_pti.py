"""benchmarks/pti_table.py runs end to end on one photo: three methods with finite numbers, the
locality rows for both tunings, a grid PNG of the promised size, and the consistency the table
relies on (PTI's pivot is the W+ run: its metrics before tuning equal the W+ row)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from pti_table import METHODS, grid_size  # noqa: E402


def _row(table: str, first: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{table}")


def test_pti_table_one_image(tmp_path, shared_images) -> None:
    image = shared_images / "cat_01.jpg"
    md = tmp_path / "table.md"
    cmd = [sys.executable, str(BENCHMARKS / "pti_table.py"), "--images", str(image),
           "--steps", "5", "--noise-steps", "5", "--pti-steps", "5", "--locality-codes", "2",
           "--threads", "1", "--cell", "40", "--out", str(tmp_path / "out"),
           "--markdown", str(md)]  # fmt: skip
    printed = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    table = md.read_text()
    assert table in printed
    for method in METHODS:  # method, steps, PSNR, SSIM, s / image
        cells = _row(table, method)
        psnr, ssim, seconds = float(cells[2]), float(cells[3]), float(cells[-1])
        assert math.isfinite(psnr) and 0 < psnr < 60 and 0 <= ssim <= 1 and seconds >= 0
    per_image = _row(table, "cat_01")
    assert len(per_image) == 1 + len(METHODS)
    assert [c for c in table.splitlines() if c.startswith("| cat_01 | 0")]  # locality, λ_R 0

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    wplus, pti = results["methods"]["cat_01"]["W+"], results["methods"]["cat_01"]["PTI"]
    assert pti["latent_psnr"] == wplus["psnr"]  # the pivot is the W+ run's latent
    assert pti["psnr"] != wplus["psnr"]  # and the tuning changed the render
    for key in ("pti", "pti_nolocality"):
        loc = results["locality"]["cat_01"][key]
        assert math.isfinite(loc["far_mean"]) and loc["far_min"] <= loc["far_mean"]

    with Image.open(tmp_path / "out" / "grid.png") as grid:
        grid.load()
        assert grid.size == grid_size(1, 40) == (4 * 40 + 5 * 4, 14 + 44 + 4)
