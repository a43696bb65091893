"""The speed benchmarks measure what they claim: benchmarks/official_restatement.py computes
exactly what our replay of NVIDIA's arithmetic computes (which tests/test_official_files.py ties
to the official outputs), and the side-by-side run reports every contender."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.fixtures.stylegan2_fixtures import tiny_stylegan2

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from official_restatement import OfficialSynthesis  # noqa: E402


@pytest.mark.parametrize(
    ("architecture", "clamp"), [("skip", None), ("resnet", 0.5), ("orig", 2.0)]
)
@pytest.mark.parametrize("fused", [True, False])
def test_restatement_equals_the_official_replay(architecture, clamp, fused) -> None:
    G = tiny_stylegan2(32, architecture=architecture, conv_clamp=clamp)
    ws = G.mapping(torch.randn(3, 16, generator=torch.Generator().manual_seed(3)))
    R = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    G.fused_modconv = fused
    grads = []
    images = []
    for synth in (lambda w: G.synthesis(w, noise_mode="const"), OfficialSynthesis(G, fused)):
        w = ws.clone().requires_grad_(True)
        img = synth(w)
        (img * R).sum().backward()
        images.append(img.detach())
        grads.append(w.grad)
    assert torch.equal(images[0], images[1]) and torch.equal(grads[0], grads[1])


def test_side_by_side_reports_each_contender() -> None:
    cmd = [sys.executable, str(BENCHMARKS / "generator_speed.py"), "--side-by-side", "--markdown",
           "--resolution", "16", "--channel-base", "128", "--channel-max", "16",
           "--batch", "2", "--steps", "2", "--warmup", "1", "--threads", "1"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] == "ours":
            rows["ours"] = words
        elif words[:1] == ["official"] and len(words) == 5:
            rows[" ".join(words[:2])] = words
    assert set(rows) == {"ours", "official eval", "official train"}, out
    assert all(float(words[-3]) > 0 for words in rows.values())  # milliseconds
    assert float(rows["official eval"][-1]) == 0  # the reference column is the replay itself
    assert 0 < float(rows["ours"][-1]) < 1e-4  # ours: the fast path, float32 rounding apart
    assert out.strip().splitlines()[-1].startswith("| cpu 1 threads | fp32 | 16 | 2 |")
