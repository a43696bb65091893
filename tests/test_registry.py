"""The named-weights registry: integrity of the table, cache location, resolution, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from pathlib import Path

import pytest

from image2stylegan.checkpoints.registry import (
    REGISTRY,
    cache_dir,
    cached_path,
    get_entry,
    is_registry_name,
    resolve_weights,
    verify_cached,
)
from image2stylegan.errors import WeightsError
from tests.fixtures.weights_server import QUOTA_PAGE, Route, closed_port_url, weights_server

__all__ = ["weights_server"]

DATA = random.Random(1).randbytes(50_000)
SHA = hashlib.sha256(DATA).hexdigest()
SIZE = len(DATA)


def _point_at(monkeypatch, name: str, urls, size=SIZE, sha256=SHA) -> None:
    """Replace entry `name` by a copy served from the local test server."""
    entry = dataclasses.replace(REGISTRY[name], urls=tuple(urls), size=size, sha256=sha256)
    monkeypatch.setitem(REGISTRY, name, entry)


# ------------------------------------------------------------------------------------------------
# The table itself


def test_required_entries_present():
    required = {
        "ffhq-1024",
        "lsun-cat-256",
        "lsun-car-512x384",
        "lsun-bedroom-256",
        "ffhq-1024-stylegan2",
        "ffhq-1024-ada",
        "vgg16-torchvision",
        "vgg16-caffe",
        "lpips-vgg",
    }
    assert required <= set(REGISTRY)
    assert REGISTRY["ffhq-1024"].filename == "karras2019stylegan-ffhq-1024x1024.pkl"
    assert REGISTRY["vgg16-torchvision"].filename == "vgg16-397923af.pth"
    assert REGISTRY["vgg16-caffe"].filename == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert REGISTRY["lpips-vgg"].size == 7289
    assert REGISTRY["lpips-vgg"].sha256 == (
        "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
    )


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_entry_is_well_formed(name):
    entry = REGISTRY[name]
    assert entry.name == name
    assert entry.kind in ("generator", "vgg16", "lpips")
    assert entry.urls and all(re.fullmatch(r"https?://\S+", u) for u in entry.urls)
    assert any(u.startswith("https://") for u in entry.urls)
    assert entry.size is None or (isinstance(entry.size, int) and entry.size > 0)
    assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert entry.checksum_source.strip()
    if entry.sha256 is None:
        assert entry.checksum_source.startswith("none published")
    assert entry.description.strip() and "\n" not in entry.description
    assert "/" not in entry.filename and entry.filename.strip() == entry.filename
    if entry.kind == "generator":
        assert entry.architecture in (
            "stylegan1", "stylegan2", "stylegan2-ada", "stylegan3-t", "stylegan3-r"
        )  # fmt: skip
        assert entry.resolution in (256, 512, 1024)
        assert entry.domain
        human_faces = ("ffhq-", "ffhqu-", "metfaces-", "metfacesu-")  # FFHQ-style crops
        assert entry.default_align == name.startswith(human_faces)
    else:
        assert entry.architecture is None and not entry.default_align


def test_names_and_filenames_unique():
    entries = list(REGISTRY.values())
    assert len({e.name for e in entries}) == len(entries)
    assert len({e.filename for e in entries}) == len(entries)


def test_non_square_car_generator():
    car = REGISTRY["lsun-car-512x384"]
    assert (car.resolution, car.content_size) == (512, (512, 384))
    assert all(e.content_size is None for n, e in REGISTRY.items() if n != "lsun-car-512x384")


# ------------------------------------------------------------------------------------------------
# Names and paths


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGE2STYLEGAN_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home"
    assert cached_path("ffhq-1024") == tmp_path / "home" / "karras2019stylegan-ffhq-1024x1024.pkl"
    monkeypatch.delenv("IMAGE2STYLEGAN_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_dir() == tmp_path / "user" / ".cache" / "image2stylegan"


def test_names(tmp_path):
    assert is_registry_name("ffhq-1024")
    assert not is_registry_name("ffhq-1024.pkl")
    assert not is_registry_name(tmp_path)
    with pytest.raises(
        WeightsError, match=r"unknown weights name 'ffhq'; known names: .*ffhq-1024"
    ):
        get_entry("ffhq")


def test_kind_mismatch_is_a_clear_error():
    with pytest.raises(WeightsError, match=r"'vgg16-caffe' names vgg16 weights, not generator"):
        resolve_weights("vgg16-caffe", kind="generator")


# ------------------------------------------------------------------------------------------------
# Resolution


def test_resolve_downloads_verifies_and_reuses(weights_server, monkeypatch):
    weights_server.routes["/ffhq.pkl"] = Route(DATA)
    _point_at(monkeypatch, "ffhq-1024", [weights_server.url("/ffhq.pkl")])
    path = resolve_weights("ffhq-1024", kind="generator", progress=False)
    assert path == cache_dir() / "karras2019stylegan-ffhq-1024x1024.pkl"
    assert path.read_bytes() == DATA
    # Cached and verified: no second request, even with every address offline.
    _point_at(monkeypatch, "ffhq-1024", [closed_port_url()])
    assert resolve_weights("ffhq-1024", download=False) == path
    assert len(weights_server.requests) == 1
    assert verify_cached("ffhq-1024").status == "OK"


def test_offline_gives_one_error_with_official_address_and_path(monkeypatch):
    official = closed_port_url("/karras2019stylegan-ffhq-1024x1024.pkl")
    _point_at(monkeypatch, "ffhq-1024", [official])
    with pytest.raises(WeightsError) as info:
        resolve_weights("ffhq-1024", progress=False)
    message = str(info.value)
    path = cached_path("ffhq-1024")
    assert "\n" not in message
    assert message.startswith("ffhq-1024: could not download")
    assert f"from {official} and place it at {path}" in message
    assert not path.exists()


def test_download_false_names_address_and_path(monkeypatch):
    with pytest.raises(WeightsError) as info:
        resolve_weights("ffhq-1024", download=False)
    entry = REGISTRY["ffhq-1024"]
    assert f"download it from {entry.urls[0]} and place it at {cached_path('ffhq-1024')}" in str(
        info.value
    )


def test_quota_page_then_mirror(weights_server, monkeypatch):
    weights_server.routes["/gdrive"] = Route(QUOTA_PAGE, content_type="text/html")
    weights_server.routes["/mirror"] = Route(DATA)
    _point_at(
        monkeypatch,
        "lsun-cat-256",
        [weights_server.url("/gdrive"), weights_server.url("/mirror")],
        size=None,
        sha256=None,
    )
    path = resolve_weights("lsun-cat-256", progress=False)
    assert path.read_bytes() == DATA
    # No checksum published: the one computed at download is recorded and checked later.
    assert SHA in verify_cached("lsun-cat-256").detail
    path.write_bytes(DATA[:-1] + b"\0")
    result = verify_cached("lsun-cat-256")
    assert result.status == "MISMATCH" and f"recorded sha256 {SHA}" in result.detail


def test_corrupt_cached_file_is_reported_not_used(monkeypatch):
    _point_at(monkeypatch, "vgg16-caffe", [closed_port_url()])
    path = cached_path("vgg16-caffe")
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = bytes(len(DATA))
    path.write_bytes(bad)
    with pytest.raises(WeightsError) as info:
        resolve_weights("vgg16-caffe")
    message = str(info.value)
    assert f"expected sha256 {SHA}, got {hashlib.sha256(bad).hexdigest()}" in message
    assert "--force vgg16-caffe" in message


def test_hand_placed_file_is_accepted_after_verification(monkeypatch):
    _point_at(monkeypatch, "lpips-vgg", [closed_port_url()])
    path = cached_path("lpips-vgg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DATA)
    assert resolve_weights("lpips-vgg", kind="lpips") == path
    assert Path(str(path) + ".sha256.json").is_file()  # next load skips re-hashing


def test_load_generator_offline_raises_weights_error(monkeypatch):
    import image2stylegan as i2s

    _point_at(monkeypatch, "ffhq-1024", [closed_port_url()])
    with pytest.raises(WeightsError, match="place it at"):
        i2s.load_generator("ffhq-1024")


def test_concurrent_resolves_download_once(weights_server, monkeypatch):
    """torchrun ranks resolving the same name at once: one download, all get the file."""
    from concurrent.futures import ThreadPoolExecutor

    weights_server.routes["/ffhq.pkl"] = Route(DATA)
    _point_at(monkeypatch, "ffhq-1024", [weights_server.url("/ffhq.pkl")])
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: resolve_weights("ffhq-1024", progress=False), range(4)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == DATA
    assert len(weights_server.requests) == 1
