"""Shared test fixtures. Architecture-specific builders live in tests/fixtures/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = Path(os.environ.get("IMAGE2STYLEGAN_SHARED", REPO.parent / "shared"))

# Two CI cores run two xdist workers: one torch thread each keeps them from fighting.
torch.set_num_threads(int(os.environ.get("TORCH_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads or writes the user's weights cache."""
    monkeypatch.setenv("IMAGE2STYLEGAN_HOME", str(tmp_path_factory.mktemp("i2s_home")))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def shared_images() -> Path:
    """../shared/images: the real photos every real-image path is tested on."""
    folder = SHARED / "images"
    if not folder.is_dir():
        pytest.fail(f"shared test images not found at {folder} (set IMAGE2STYLEGAN_SHARED)")
    return folder
