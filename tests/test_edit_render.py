"""Batched rendering: frames do not depend on the batch size; random noise is seeded per code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from image2stylegan.edit import bordered_grid, image_strip, render_frames
from tests.fixtures.stylegan1_fixtures import tiny_stylegan1


@pytest.fixture(scope="module")
def G():
    return tiny_stylegan1(16, seed=3)


def _ws(G, n: int) -> torch.Tensor:
    with torch.no_grad():
        return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(0)))


def test_frames_stream_in_order_and_match_one_by_one(G):
    ws = _ws(G, 5)
    calls = []
    frames = list(render_frames(G, ws, batch_size=2, on_batch=calls.append))
    assert calls == [2, 2, 1]
    assert all(f.shape == (16, 16, 3) and f.dtype == np.uint8 for f in frames)
    with torch.no_grad():
        for k in range(5):  # one code per call: the same computation, the same bits
            (single,) = render_frames(G, ws[k : k + 1], batch_size=1)
            ref = G.synthesis(ws[k : k + 1], noise_mode="const")
            ref = (ref * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
            assert np.array_equal(single, ref)
            # other batch sizes: the same images up to float rounding (CPU kernels may sum in
            # another order for another batch size: at most 1 level on a rare pixel)
            assert np.abs(frames[k].astype(int) - single).max() <= 1


def test_random_noise_is_seeded_per_code_not_per_batch(G):
    ws = _ws(G, 4)
    seeds = [11, 12, 13, 14]
    a = list(render_frames(G, ws, 4, noise_mode="random", noise_seeds=seeds))
    b = list(render_frames(G, ws, 1, noise_mode="random", noise_seeds=seeds))
    c = list(render_frames(G, ws, 4, noise_mode="random", noise_seeds=[1, 2, 3, 4]))
    const = list(render_frames(G, ws, 4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], const[0])


def test_bad_arguments(G):
    with pytest.raises(ValueError, match="batch_size"):
        next(render_frames(G, _ws(G, 2), batch_size=0))
    with pytest.raises(ValueError, match="one noise seed per code"):
        next(render_frames(G, _ws(G, 2), noise_mode="random", noise_seeds=[1]))


def test_strip_and_bordered_grid_layout():
    def tile(v: int) -> Image.Image:
        return Image.new("RGB", (8, 6), (v, v, v))

    strip = np.asarray(image_strip([tile(10), tile(20), tile(30)]))
    assert strip.shape == (6, 24, 3) and strip[0, 8, 0] == 20
    grid = np.asarray(bordered_grid([tile(1), tile(2)], [tile(3)], [[tile(4), tile(5)]], gap=2))
    assert grid.shape == (6 + 2 + 6, 8 + 2 + 16, 3)
    assert grid[0, 0, 0] == 255  # blank corner
    assert grid[0, 10, 0] == 1 and grid[0, 18, 0] == 2  # contents along the top
    assert grid[8, 0, 0] == 3  # the style down the left
    assert grid[8, 10, 0] == 4 and grid[8, 18, 0] == 5
    with pytest.raises(ValueError, match="rows"):
        bordered_grid([tile(1)], [tile(2)], [[tile(3), tile(4)]])
