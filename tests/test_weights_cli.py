"""`image2stylegan weights list | download | verify | path` through the real entry point."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest

from image2stylegan.checkpoints.registry import REGISTRY, cache_dir, cached_path
from image2stylegan.cli.main import main
from tests.fixtures.weights_server import Route, closed_port_url, weights_server

__all__ = ["weights_server"]

DATA = random.Random(2).randbytes(20_000)
SHA = hashlib.sha256(DATA).hexdigest()


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["weights", *args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _point_at(monkeypatch, name: str, urls) -> None:
    entry = dataclasses.replace(REGISTRY[name], urls=tuple(urls), size=len(DATA), sha256=SHA)
    monkeypatch.setitem(REGISTRY, name, entry)


def test_list_table_and_json(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SIZE", "CACHED", "DESCRIPTION"]
    assert any(line.startswith("ffhq-1024 ") and " no " in line for line in lines)
    assert str(cache_dir()) in out

    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    records = {r["name"]: r for r in json.loads(out)}
    assert set(records) == set(REGISTRY)
    car = records["lsun-car-512x384"]
    assert car["content_size"] == [512, 384] and car["cached"] is False
    assert records["ffhq-1024"]["path"] == str(cached_path("ffhq-1024"))


def test_path(capsys):
    code, out, _ = run(capsys, "path", "vgg16-caffe")
    assert code == 0
    assert out.strip() == str(cache_dir() / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    code, _, err = run(capsys, "path", "nope")
    assert code == 1 and err.startswith("error: unknown weights name 'nope'")


def test_download_then_verify_ok_then_mismatch(weights_server, monkeypatch, capsys):
    weights_server.routes["/lpips.pth"] = Route(DATA)
    _point_at(monkeypatch, "lpips-vgg", [weights_server.url("/lpips.pth")])
    code, out, err = run(capsys, "download", "lpips-vgg")
    assert code == 0, err
    assert out.strip() == f"lpips-vgg: {cached_path('lpips-vgg')}"
    assert "lpips-v0.1-vgg.pth" in err  # progress bar

    code, out, _ = run(capsys, "verify", "lpips-vgg")
    assert code == 0 and out.startswith("OK ")
    code, out, _ = run(capsys, "verify")  # every cached file
    assert code == 0 and out.startswith("OK ") and "lpips-vgg" in out

    cached_path("lpips-vgg").write_bytes(b"\0" + DATA[1:])
    code, out, _ = run(capsys, "verify", "lpips-vgg")
    assert code == 1
    assert out.startswith("MISMATCH") and f"expected sha256 {SHA}" in out


def test_verify_missing(capsys):
    code, out, _ = run(capsys, "verify", "ffhq-1024")
    assert code == 1
    assert out.startswith("MISSING") and str(cached_path("ffhq-1024")) in out


def test_download_failures_one_line_each_others_still_done(weights_server, monkeypatch, capsys):
    weights_server.routes["/lpips.pth"] = Route(DATA)
    _point_at(monkeypatch, "lpips-vgg", [weights_server.url("/lpips.pth")])
    _point_at(monkeypatch, "ffhq-1024", [closed_port_url()])
    code, out, err = run(capsys, "download", "--quiet", "ffhq-1024", "nope", "lpips-vgg")
    assert code == 1
    assert cached_path("lpips-vgg").is_file()
    assert out.strip() == f"lpips-vgg: {cached_path('lpips-vgg')}"
    errors = err.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("error: ffhq-1024: could not download")
    assert f"place it at {cached_path('ffhq-1024')}" in errors[0]
    assert errors[1].startswith("error: unknown weights name 'nope'")


def test_download_requires_a_name(capsys):
    code, _, err = run(capsys, "download")
    assert code == 2 and "NAME" in err


def test_download_force_replaces_a_corrupt_file(weights_server, monkeypatch, capsys):
    weights_server.routes["/lpips.pth"] = Route(DATA)
    _point_at(monkeypatch, "lpips-vgg", [weights_server.url("/lpips.pth")])
    path = cached_path("lpips-vgg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"junk")
    code, _, err = run(capsys, "download", "--quiet", "lpips-vgg")
    assert code == 1 and "--force lpips-vgg" in err
    code, _, err = run(capsys, "download", "--quiet", "--force", "lpips-vgg")
    assert code == 0, err
    assert path.read_bytes() == DATA
