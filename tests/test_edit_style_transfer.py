"""Sec. 4.2 style transfer by crossover: exactly the specified rows from each code."""

from __future__ import annotations

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.edit import style_transfer_grid


def _code(seed: int, num_ws: int = 18) -> torch.Tensor:
    return torch.randn(num_ws, 512, generator=torch.Generator().manual_seed(seed))


def test_default_takes_the_papers_9_plus_9_rows():
    content, style = _code(0), _code(1)
    out = i2s.style_transfer(content, style)
    assert out.shape == (1, 18, 512)
    assert torch.equal(out[0, :9], content[:9])
    assert torch.equal(out[0, 9:], style[9:])


@pytest.mark.parametrize("from_layer", [0, 1, 4, 17, 18])
def test_every_split_copies_rows_exactly(from_layer):
    content, style = _code(2).unsqueeze(0), _code(3).unsqueeze(0)  # [1, num_ws, w_dim] inputs
    out = i2s.style_transfer(content, style, from_layer=from_layer)[0]
    for i in range(18):
        source = content[0] if i < from_layer else style[0]
        assert torch.equal(out[i], source[i]), i


def test_bad_split_and_shapes():
    with pytest.raises(ValueError, match=r"\[0, 18\]"):
        i2s.style_transfer(_code(0), _code(1), from_layer=19)
    with pytest.raises(ValueError, match="share one"):
        i2s.style_transfer(_code(0), _code(1, num_ws=14))


def test_grid_rows_are_styles_and_columns_contents():
    contents = [_code(10), _code(11), _code(12)]
    styles = [_code(20), _code(21)]
    grid = style_transfer_grid(contents, styles, from_layer=6)
    assert grid.shape == (2, 3, 18, 512)
    for s, style in enumerate(styles):
        for c, content in enumerate(contents):
            assert torch.equal(grid[s, c], i2s.style_transfer(content, style, 6)[0])
