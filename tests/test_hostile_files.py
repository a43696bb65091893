"""Hostile and careless files (issue 11): latents, generator configs and images that declare more
than they hold, or more than any real file needs, are refused from their headers with one line
naming the file and the field, before memory is allocated."""

from __future__ import annotations

import io
import json
import resource
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import image2stylegan as i2s
from image2stylegan.checkpoints.native import read_native_header, save_native
from image2stylegan.errors import CheckpointError, ImageError, LatentError
from image2stylegan.image import MAX_IMAGE_PIXELS, load_image
from image2stylegan.models.limits import MAX_PARAMETERS
from tests.fixtures.stylegan1_fixtures import tiny_stylegan1
from tests.fixtures.stylegan2_fixtures import (
    ada_init_kwargs,
    ada_tensors_from_generator,
    tiny_stylegan2,
    write_ada_pickle_file,
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4", fortran: bool = False) -> bytes:
    """A version 1.0 .npy header declaring `shape` (no data follows unless appended)."""
    buf = io.BytesIO()
    header = {"descr": dtype, "fortran_order": fortran, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _npz(path: Path, members: dict[str, bytes], compress: bool = True) -> Path:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return path


def _latent_error(path: Path) -> str:
    with pytest.raises(LatentError) as info:
        i2s.load_latent(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


# --- latents -------------------------------------------------------------------------------


def test_latent_zip_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    """The issue's case: `w` [1, 1572864, 512] (3.2 GB of float32) compressed into a small file;
    refused from the header, without inflating a byte of it."""
    shape = (1, 1572864, 512)
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        # 64 MiB of real zeros behind the header: nothing past the header may be inflated.
        zf.writestr("w.npy", _npy_header(shape) + b"\0" * 2**26)
    assert path.stat().st_size < 200_000
    before = _peak_rss_mb()
    start = time.perf_counter()
    message = _latent_error(path)
    assert "'w' declares 1572864 x 512 codes, more than any generator takes" in message
    assert time.perf_counter() - start < 1.0
    assert _peak_rss_mb() - before < 100


def test_latent_declaring_1e12_floats_is_refused(tmp_path: Path) -> None:
    w = io.BytesIO()
    np.save(w, np.zeros((1, 18, 512), np.float32))
    path = _npz(tmp_path / "huge.npz", {"w": w.getvalue(), "z": _npy_header((10**12,))})
    message = _latent_error(path)
    assert "array 'z' declares shape [1000000000000]" in message and "refused" in message


def test_latent_huge_metadata_string_is_refused(tmp_path: Path) -> None:
    w = io.BytesIO()
    np.save(w, np.zeros((1, 18, 512), np.float32))
    path = _npz(
        tmp_path / "meta.npz",
        {"w": w.getvalue(), "metadata": _npy_header((), dtype="<U100000000")},
    )
    assert "array 'metadata' declares shape []" in _latent_error(path)


def test_bare_npy_with_a_huge_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    path.write_bytes(_npy_header((1, 18, 2**20)))
    assert "'w' declares 18 x 1048576 codes" in _latent_error(path)


def test_latent_with_too_many_members_is_refused(tmp_path: Path) -> None:
    members = {f"a{i}": _npy_header((1,)) + b"\0" * 4 for i in range(300)}
    assert "holds 300 entries, more than the 256" in _latent_error(
        _npz(tmp_path / "many.npz", members)
    )


def test_latent_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = _npz(tmp_path / "obj.npz", {"w": _npy_header((1,), dtype="|O") + b"\x80\x04N."})
    assert "holds pickled Python objects" in _latent_error(path)


def test_latent_array_cut_short(tmp_path: Path) -> None:
    path = _npz(tmp_path / "cut.npz", {"w": _npy_header((1, 18, 512)) + b"\0" * 100})
    assert "array 'w' ends early" in _latent_error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is a note, not a latent\n", "not a .npz/.npy latent file (it is a text file)"),
        (b"\x80\x04\x95\x00", "a pickle of Python objects"),
        (b"\x00\x01\x02\xff\xfe", "unknown binary content"),
    ],
)
def test_latent_that_is_not_an_array_file(content: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "latent.npz"
    path.write_bytes(content)
    assert expected in _latent_error(path)


def test_latent_round_trip_and_fortran_order(tmp_path: Path) -> None:
    w = torch.randn(1, 6, 32)
    noise = np.asfortranarray(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    path = i2s.save_latent(tmp_path / "a.npz", w, {"k": 1}, noise_00=noise)
    lat = i2s.load_latent(path)
    assert torch.equal(lat.w, w) and lat.metadata == {"k": 1}
    assert np.array_equal(lat.extras["noise_00"].numpy(), noise)
    # NVIDIA's projector writes np.savez(w=...) without metadata; a bare .npy also loads.
    np.savez(tmp_path / "projected_w.npz", w=w.numpy())
    assert torch.equal(i2s.load_latent(tmp_path / "projected_w.npz").w, w)
    np.save(tmp_path / "w.npy", w[0].numpy())
    assert torch.equal(i2s.load_latent(tmp_path / "w.npy").w, w)


# --- generator configs -----------------------------------------------------------------------


def _native_with_config(tmp_path: Path, name: str, G: i2s.Generator, **changes: object) -> Path:
    src = save_native(G, tmp_path / f"src-{name}.safetensors")
    header = dict(read_native_header(src))
    header["config"] = json.dumps({**json.loads(header["config"]), **changes})
    path = tmp_path / f"{name}.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata=header)  # tiny: the config lies
    return path


def _checkpoint_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        i2s.load_generator(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("arch", "changes", "expected"),
    [
        ("stylegan2", {"w_dim": 2**20}, "w_dim = 1048576 is out of range (allowed: 1 to 8192)"),
        ("stylegan2", {"mapping_layers": 10**6}, "mapping_layers = 1000000 is out of range"),
        ("stylegan2", {"img_resolution": 2**20}, "img_resolution = 1048576 is out of range"),
        ("stylegan2", {"img_resolution": 48}, "img_resolution = 48 must be a power of two"),
        ("stylegan2", {"z_dim": "512"}, "z_dim must be an integer, got '512'"),
        ("stylegan2", {"conv_clamp": -1}, "conv_clamp = -1 is out of range"),
        ("stylegan2", {"resample_filter": [1] * 1000}, "resample_filter must be a list of 1 to 16"),
        ("stylegan2", {"use_noise": "yes"}, "use_noise must be true or false"),
        ("stylegan1", {"fmap_base": -8192}, "fmap_base = -8192 is out of range"),
        ("stylegan1", {"dlatent_size": -512}, "dlatent_size = -512 is out of range"),
        ("stylegan1", {"fmap_max": 0}, "fmap_max = 0 is out of range"),
        ("stylegan1", {"label_size": 10**9}, "label_size = 1000000000 is out of range"),
    ],
)
def test_unbounded_config_fields_are_refused(
    arch: str, changes: dict, expected: str, tmp_path: Path
) -> None:
    G = tiny_stylegan1(8) if arch == "stylegan1" else tiny_stylegan2(8)
    path = _native_with_config(tmp_path, "bad", G, **changes)
    before = _peak_rss_mb()
    message = _checkpoint_error(path)
    assert f"invalid {arch} config" in message and expected in message
    assert _peak_rss_mb() - before < 100


def test_config_within_field_limits_but_too_large_is_refused_before_building(
    tmp_path: Path,
) -> None:
    """Each field is in range, but together they describe billions of weights: counted on the
    meta device (no memory), refused."""
    path = _native_with_config(
        tmp_path,
        "wide",
        tiny_stylegan2(8),
        img_resolution=4096,
        channel_base=2**20,
        channel_max=8192,
        w_dim=8192,
    )
    before = _peak_rss_mb()
    message = _checkpoint_error(path)
    assert f"more than the {MAX_PARAMETERS:,} allowed" in message
    assert _peak_rss_mb() - before < 200


def test_native_tensor_shapes_are_checked_before_building(tmp_path: Path) -> None:
    """A config in every limit whose tensors are not in the file: refused from the header."""
    path = _native_with_config(tmp_path, "empty", tiny_stylegan2(8), channel_max=4096)
    assert "tensors do not match the stylegan2 config (missing " in _checkpoint_error(path)


# --- images ----------------------------------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares width x height but whose pixel data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    path.write_bytes(data + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path


def _image_error(path: Path) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_image_above_pillows_default_limit_but_within_ours_is_not_a_bomb(tmp_path: Path) -> None:
    """9500 x 9500 (90 MP) is above Pillow's default 89 MP warning threshold and below our
    16384^2 cap: it must be decoded (here it fails only because its pixel data is cut short)."""
    message = _image_error(_png_header_only(tmp_path / "scan.png", 9500, 9500))
    assert "corrupt or truncated image data" in message
    assert "bomb" not in message


@pytest.mark.parametrize("side", [16385, 30000])
def test_image_above_our_cap_is_refused_with_our_message(side: int, tmp_path: Path) -> None:
    message = _image_error(_png_header_only(tmp_path / "bomb.png", side, side))
    assert f"more than the {MAX_IMAGE_PIXELS:,} allowed" in message
    assert "downscale it first" in message


@pytest.mark.parametrize(
    ("synthesis", "top", "expected"),
    [
        ({"channel_base": 2**20, "channel_max": 8192}, {"img_resolution": 4096}, "refused: the"),
        ({}, {"w_dim": 2**20}, "w_dim = 1048576 is out of range"),
        ({"num_fp16_res": 10**9}, {}, "num_fp16_res = 1000000000 is out of range"),
    ],
)
def test_pickled_constructor_arguments_are_bounded(
    synthesis: dict, top: dict, expected: str, tmp_path: Path
) -> None:
    """The same limits hold for a stylegan2-ada-pytorch pickle whose recorded constructor
    arguments lie: refused before the network is built, not after allocating it."""
    G = tiny_stylegan2(8)
    kwargs = ada_init_kwargs(G.config)
    kwargs.update(top)
    kwargs["synthesis_kwargs"].update(synthesis)
    path = write_ada_pickle_file(tmp_path / "ada.pkl", ada_tensors_from_generator(G), kwargs)
    before = _peak_rss_mb()
    assert expected in _checkpoint_error(path)
    assert _peak_rss_mb() - before < 200
