"""Property tests (hypothesis) of the three readers that take untrusted bytes: images, latents and
generator checkpoints. Random files and mutations of valid ones must either load or end in one of
our own error classes (one line, naming the file) — never another exception — and must not
allocate much memory doing so."""

from __future__ import annotations

import io
import os
import resource
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import image2stylegan as i2s
from image2stylegan.checkpoints.native import save_native
from image2stylegan.errors import CheckpointError, ImageError, LatentError
from image2stylegan.image import load_image
from tests.fixtures.stylegan1_fixtures import (
    tf_variables_from_generator,
    tiny_stylegan1,
    write_lernapparat_pt,
    write_tiny_stylegan1_pickle,
)
from tests.fixtures.stylegan2_fixtures import (
    ada_init_kwargs,
    ada_tensors_from_generator,
    tiny_stylegan2,
    write_ada_pickle_file,
    write_reference_checkpoint,
)

# Deterministic in CI (the same examples every run); deadline off: the CI cores are shared.
PROPERTY = settings(
    max_examples=int(os.environ.get("I2S_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    derandomize=os.environ.get("I2S_PROPERTY_RANDOM") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MEMORY_GROWTH_MB = 1024  # the readers may not grow the process by more than this


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with random byte flips, an insertion, a deletion and/or a cut."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data) - 1))
        del data[start : start + draw(st.integers(1, 64))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _contained(read: Callable[[Path], object], path: Path, errors: type[Exception]) -> None:
    """`read(path)` succeeds or raises one line of `errors` that names the file."""
    try:
        read(path)
    except errors as e:
        message = str(e)
        assert str(path) in message, message
        assert "\n" not in message, message


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def memory_baseline() -> float:
    return _rss_mb()


def _check_memory(baseline: float) -> None:
    assert _rss_mb() - baseline < MEMORY_GROWTH_MB


# --- images --------------------------------------------------------------------------------


def _valid_images(shared_images: Path) -> dict[str, bytes]:
    photo = Image.open(shared_images / "face_01.jpg").convert("RGB").resize((24, 20))
    files = {}
    for fmt, kwargs in {
        "PNG": {},
        "JPEG": {"quality": 80},
        "GIF": {},
        "WEBP": {},
        "TIFF": {},
        "BMP": {},
    }.items():
        buf = io.BytesIO()
        photo.save(buf, fmt, **kwargs)
        files[fmt] = buf.getvalue()
    return files


@pytest.fixture(scope="module")
def valid_images(shared_images: Path) -> dict[str, bytes]:
    return _valid_images(shared_images)


@PROPERTY
@given(data=st.data())
def test_images_mutated(
    data: st.DataObject, valid_images: dict[str, bytes], tmp_path: Path, memory_baseline: float
) -> None:
    fmt = data.draw(st.sampled_from(sorted(valid_images)))
    path = tmp_path / f"photo.{fmt.lower()}"
    path.write_bytes(data.draw(mutated(valid_images[fmt])))
    _contained(load_image, path, ImageError)
    _check_memory(memory_baseline)


@PROPERTY
@given(content=st.binary(max_size=4096))
def test_images_random_bytes(content: bytes, tmp_path: Path, memory_baseline: float) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    _contained(load_image, path, ImageError)
    _check_memory(memory_baseline)


# --- latents -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_latents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("latents")
    w = torch.randn(1, 6, 16)
    ours = i2s.save_latent(folder / "a.npz", w, {"generator": "x"}, z=torch.randn(1, 16))
    buf = io.BytesIO()
    np.savez_compressed(buf, w=w.numpy())  # NVIDIA's projector layout, compressed
    npy = io.BytesIO()
    np.save(npy, w[0].numpy())
    return {"ours": ours.read_bytes(), "compressed": buf.getvalue(), "npy": npy.getvalue()}


@PROPERTY
@given(data=st.data())
def test_latents_mutated(
    data: st.DataObject, valid_latents: dict[str, bytes], tmp_path: Path, memory_baseline: float
) -> None:
    kind = data.draw(st.sampled_from(sorted(valid_latents)))
    path = tmp_path / "latent.npz"
    path.write_bytes(data.draw(mutated(valid_latents[kind])))
    _contained(i2s.load_latent, path, LatentError)
    _check_memory(memory_baseline)


@PROPERTY
@given(content=st.binary(max_size=4096))
def test_latents_random_bytes(content: bytes, tmp_path: Path, memory_baseline: float) -> None:
    path = tmp_path / "latent.npz"
    path.write_bytes(content)
    _contained(i2s.load_latent, path, LatentError)
    _check_memory(memory_baseline)


# --- generator checkpoints -------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("checkpoints")
    sg2 = tiny_stylegan2(8)
    paths = {
        "native": save_native(tiny_stylegan1(8), folder / "g.safetensors"),
        "stylegan1-tf": write_tiny_stylegan1_pickle(folder / "sg1.pkl", 8, seed=1)[0],
        "lernapparat": write_lernapparat_pt(
            folder / "g_all.pt", tf_variables_from_generator(tiny_stylegan1(8))
        ),
        "ada": write_ada_pickle_file(
            folder / "ada.pkl", ada_tensors_from_generator(sg2), ada_init_kwargs(sg2.config)
        ),
        "stylegan2-tf": write_reference_checkpoint("tf_revised16", folder / "sg2.pkl"),
        "rosinality": write_reference_checkpoint("rosinality_64", folder / "ros.pt"),
    }
    return {name: path.read_bytes() for name, path in paths.items()}


@PROPERTY
@given(data=st.data())
def test_checkpoints_mutated(
    data: st.DataObject,
    valid_checkpoints: dict[str, bytes],
    tmp_path: Path,
    memory_baseline: float,
) -> None:
    kind = data.draw(st.sampled_from(sorted(valid_checkpoints)))
    path = tmp_path / "generator.pkl"
    path.write_bytes(data.draw(mutated(valid_checkpoints[kind])))
    _contained(i2s.load_generator, path, CheckpointError)
    _check_memory(memory_baseline)


@PROPERTY
@given(content=st.binary(max_size=4096))
def test_checkpoints_random_bytes(content: bytes, tmp_path: Path, memory_baseline: float) -> None:
    path = tmp_path / "generator.pkl"
    path.write_bytes(content)
    _contained(i2s.load_generator, path, CheckpointError)
    _check_memory(memory_baseline)
