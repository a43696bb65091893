"""Streaming frame writers: MP4 (H.264 yuv420p), GIF, PNG folders; atomic; strips."""

from __future__ import annotations

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from image2stylegan.video import (
    OutputError,
    default_strip_path,
    open_frame_writer,
    output_kind,
    save_strip,
    strip_indices,
)


def _frames(n: int, h: int = 24, w: int = 32) -> list[np.ndarray]:
    """Smooth, distinct frames (GIF/H.264 reproduce them closely)."""
    y, x = np.mgrid[0:h, 0:w]
    return [
        np.stack(
            [(x * 8 + 20 * k) % 256, (y * 10) % 256, np.full_like(x, 40 * k % 256)], -1
        ).astype(np.uint8)
        for k in range(n)
    ]


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _read_mp4(path) -> tuple[dict, int]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    return meta, count


def test_mp4_h264_yuv420p_frame_count_and_size(tmp_path):
    out = tmp_path / "v.mp4"
    with open_frame_writer(out, fps=10) as writer:
        for frame in _frames(12):
            writer.append(frame)
    meta, count = _read_mp4(out)
    assert count == 12
    assert tuple(meta["size"]) == (32, 24)
    assert meta["fps"] == 10
    assert meta["codec"].startswith("h264") and meta["pix_fmt"].startswith("yuv420p")
    assert _listing(tmp_path) == ["v.mp4"]  # no temporary files left


def test_mp4_odd_sizes_are_padded_to_even(tmp_path):
    out = tmp_path / "odd.mp4"
    with open_frame_writer(out) as writer:
        for frame in _frames(3, h=23, w=31):
            writer.append(frame)
    meta, count = _read_mp4(out)
    assert (tuple(meta["size"]), count) == ((32, 24), 3)


def test_gif_frames_loop_and_content(tmp_path):
    out = tmp_path / "a.gif"
    frames = _frames(6)
    with open_frame_writer(out, fps=20) as writer:
        for frame in frames:
            writer.append(frame)
    decoded = iio.imread(out, index=None)
    assert decoded.shape == (6, 24, 32, 3)
    for got, want in zip(decoded, frames, strict=True):
        assert np.abs(got.astype(int) - want).mean() < 4  # 256-colour quantisation only
    with Image.open(out) as im:
        assert im.n_frames == 6 and im.info["loop"] == 0 and im.info["duration"] == 50


def test_folder_of_pngs_is_exact(tmp_path):
    out = tmp_path / "frames"
    frames = _frames(3)
    with open_frame_writer(out) as writer:
        for frame in frames:
            writer.append(frame)
    assert _listing(out) == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    assert np.array_equal(iio.imread(out / "frame_0002.png"), frames[2])
    assert _listing(tmp_path) == ["frames"]


def test_folder_replaces_old_frames_but_never_other_files(tmp_path):
    out = tmp_path / "frames"
    for n in (4, 2):
        with open_frame_writer(out) as writer:
            for frame in _frames(n):
                writer.append(frame)
    assert _listing(out) == ["frame_0000.png", "frame_0001.png"]
    assert _listing(tmp_path) == ["frames"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds other files"):
        open_frame_writer(out)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["v.mp4", "v.gif", "frames"])
def test_an_error_mid_sequence_leaves_nothing(tmp_path, name):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError, match="boom"), open_frame_writer(tmp_path / name) as writer:
        for k, frame in enumerate(_frames(5)):
            if k == 3:
                raise RuntimeError("boom")
            writer.append(frame)
    assert _listing(tmp_path) == ["keep.txt"]


def test_existing_output_survives_a_failed_rewrite(tmp_path):
    out = tmp_path / "v.gif"
    with open_frame_writer(out) as writer:
        writer.append(_frames(1)[0])
    before = out.read_bytes()
    with pytest.raises(RuntimeError), open_frame_writer(out) as writer:
        writer.append(_frames(2)[1])
        raise RuntimeError
    assert out.read_bytes() == before


def test_unwritable_locations_fail_before_any_frame(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for name in ("v.mp4", "v.gif", "frames"):
        with pytest.raises(OutputError, match="cannot write"):
            open_frame_writer(blocker / name)
    with pytest.raises(OutputError, match="cannot write"):
        save_strip(_frames(2), blocker / "s.png")
    with pytest.raises(OutputError, match="is a file"):
        open_frame_writer(blocker.with_suffix(""))  # an existing file named like a folder
    assert _listing(tmp_path) == ["a_file"]


def test_mismatched_frames_and_empty_sequences(tmp_path):
    writer = open_frame_writer(tmp_path / "frames")
    writer.append(_frames(1)[0])
    with pytest.raises(ValueError, match="the first frame was"):
        writer.append(_frames(1, h=10)[0])
    writer.abort()
    with pytest.raises(OutputError, match="no frames"):
        open_frame_writer(tmp_path / "e.mp4").close()
    assert _listing(tmp_path) == []


def test_kinds_strips_and_indices(tmp_path):
    assert output_kind("a.mp4") == "mp4" and output_kind("a.GIF") == "gif"
    assert output_kind("a.png") == "image" and output_kind("out/frames") == "folder"
    assert output_kind(tmp_path) == "folder"
    with pytest.raises(ValueError, match="unsupported output"):
        output_kind("a.avi")
    assert default_strip_path("x/m.mp4").as_posix() == "x/m_strip.png"
    assert default_strip_path("x/frames").as_posix() == "x/frames_strip.png"
    assert strip_indices(30, 4) == [0, 10, 19, 29]
    assert strip_indices(3, 8) == [0, 1, 2]
    assert strip_indices(5, 1) == [0]
    frames = _frames(3)
    save_strip(frames, tmp_path / "s.png")
    strip = iio.imread(tmp_path / "s.png")
    assert strip.shape == (24, 96, 3)
    assert np.array_equal(strip[:, 32:64], frames[1])
