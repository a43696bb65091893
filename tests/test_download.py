"""The resumable, verified downloader against a local HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from image2stylegan.checkpoints.download import download, expand_address
from image2stylegan.errors import WeightsError
from tests.fixtures.weights_server import QUOTA_PAGE, Route, closed_port_url, weights_server

__all__ = ["weights_server"]  # the fixture, imported for pytest

DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_success_verified_with_progress(weights_server, tmp_path, capsys):
    weights_server.routes["/w.bin"] = Route(DATA)
    dest = tmp_path / "w.bin"
    out = download(weights_server.url("/w.bin"), dest, size=len(DATA), sha256=SHA, progress=True)
    assert out == dest
    assert dest.read_bytes() == DATA
    assert _leftovers(tmp_path) == ["w.bin"]  # no .part left
    err = capsys.readouterr().err
    assert "w.bin" in err and "100%" in err  # the tqdm bar ran to completion


def test_download_without_published_checksum(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA, send_length=False)
    dest = download([weights_server.url("/w.bin")], tmp_path / "w.bin", progress=False)
    assert dest.read_bytes() == DATA


def test_wrong_checksum_says_expected_and_got_and_leaves_nothing(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA)
    wrong = "0" * 64
    with pytest.raises(WeightsError) as info:
        download(weights_server.url("/w.bin"), tmp_path / "w.bin", sha256=wrong, progress=False)
    message = str(info.value)
    assert f"expected sha256 {wrong}" in message and f"got {SHA}" in message
    assert "\n" not in message
    assert _leftovers(tmp_path) == []


def test_wrong_size_announced_by_server_fails_before_transfer(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA)
    with pytest.raises(WeightsError, match=r"offers 300,000 bytes, expected 12 bytes"):
        download(weights_server.url("/w.bin"), tmp_path / "w.bin", size=12, progress=False)
    assert _leftovers(tmp_path) == []


def test_wrong_size_without_content_length(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA, send_length=False)
    with pytest.raises(WeightsError, match=r"expected 12 bytes, got 300,000 bytes"):
        download(weights_server.url("/w.bin"), tmp_path / "w.bin", size=12, progress=False)
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_no_final_file_and_resumes(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA, cut_at=100_000, cuts=1)
    dest = tmp_path / "w.bin"
    with pytest.raises(WeightsError, match=r"connection closed after 100,000 of 300,000 bytes"):
        download(weights_server.url("/w.bin"), dest, len(DATA), SHA, progress=False, retries=0)
    assert not dest.exists()
    assert (tmp_path / "w.bin.part").stat().st_size == 100_000

    download(weights_server.url("/w.bin"), dest, len(DATA), SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert _leftovers(tmp_path) == ["w.bin"]
    assert weights_server.requests == [("/w.bin", None), ("/w.bin", "bytes=100000-")]


def test_interrupted_transfer_resumes_within_one_call(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA, cut_at=50_000, cuts=2)
    dest = download(weights_server.url("/w.bin"), tmp_path / "w.bin", len(DATA), SHA, False)
    assert dest.read_bytes() == DATA
    assert [r for _, r in weights_server.requests] == [None, "bytes=50000-", "bytes=100000-"]


def test_resume_against_server_without_range_support_starts_over(weights_server, tmp_path):
    weights_server.routes["/w.bin"] = Route(DATA, ranges=False, cut_at=70_000, cuts=1)
    dest = tmp_path / "w.bin"
    with pytest.raises(WeightsError):
        download(weights_server.url("/w.bin"), dest, len(DATA), SHA, progress=False, retries=0)
    download(weights_server.url("/w.bin"), dest, len(DATA), SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_stale_part_file_is_discarded(weights_server, tmp_path):
    """Bytes kept from another file: the resumed result fails sha256, so it starts over."""
    weights_server.routes["/w.bin"] = Route(DATA)
    (tmp_path / "w.bin.part").write_bytes(b"x" * 1000)
    dest = download(weights_server.url("/w.bin"), tmp_path / "w.bin", len(DATA), SHA, False)
    assert dest.read_bytes() == DATA
    assert [r for _, r in weights_server.requests] == ["bytes=1000-", None]


def test_html_quota_page_is_recognised_and_next_address_tried(weights_server, tmp_path):
    weights_server.routes["/quota"] = Route(QUOTA_PAGE, content_type="text/html; charset=utf-8")
    weights_server.routes["/sniffed"] = Route(QUOTA_PAGE)  # HTML sent as octet-stream
    weights_server.routes["/w.bin"] = Route(DATA)
    urls = [weights_server.url(p) for p in ("/quota", "/sniffed", "/w.bin")]
    dest = download(urls, tmp_path / "w.bin", len(DATA), SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert [p for p, _ in weights_server.requests] == ["/quota", "/sniffed", "/w.bin"]


def test_html_page_only_gives_a_clear_error_and_saves_nothing(weights_server, tmp_path):
    weights_server.routes["/quota"] = Route(QUOTA_PAGE, content_type="text/html")
    weights_server.routes["/sniffed"] = Route(QUOTA_PAGE)
    urls = [weights_server.url("/quota"), weights_server.url("/sniffed")]
    with pytest.raises(WeightsError) as info:
        download(urls, tmp_path / "w.pkl", progress=False)
    message = str(info.value)
    assert message.count("HTML web page") == 2 and "quota exceeded" in message
    assert _leftovers(tmp_path) == []


def test_all_addresses_failing_give_one_error_naming_address_and_path(weights_server, tmp_path):
    offline = closed_port_url("/official.pkl")
    urls = [offline, weights_server.url("/missing")]
    dest = tmp_path / "cache" / "model.pkl"
    with pytest.raises(WeightsError) as info:
        download(urls, dest, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert f"{offline}: cannot connect" in message
    assert "HTTP 404" in message
    assert f"Download it yourself from {offline} and place it at {dest}" in message
    assert not dest.exists()


def test_stalled_server_times_out(weights_server, tmp_path):
    weights_server.routes["/slow"] = Route(DATA, stall=2.0)
    with pytest.raises(WeightsError, match=r"no data for 0.3 s"):
        download(
            weights_server.url("/slow"), tmp_path / "w.bin", progress=False, timeout=0.3, retries=0
        )
    assert not (tmp_path / "w.bin").exists()


def test_google_drive_addresses_get_the_direct_confirm_form():
    assert expand_address("https://drive.google.com/uc?id=1MEGjdvVpUsu1jB4zrXZN7Y4kBBOzizDQ") == [
        "https://drive.usercontent.google.com/download?id=1MEGjdvVpUsu1jB4zrXZN7Y4kBBOzizDQ"
        "&export=download&confirm=t",
        "https://drive.google.com/uc?id=1MEGjdvVpUsu1jB4zrXZN7Y4kBBOzizDQ",
    ]
    assert expand_address("https://drive.google.com/file/d/abc-_1/view")[0].endswith(
        "id=abc-_1&export=download&confirm=t"
    )
    other = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-ffhq-config-f.pkl"
    assert expand_address(other) == [other]
