"""Streaming frame writers: MP4 (H.264), GIF, or a folder of PNGs, chosen from the output path.

Frames arrive one at a time (uint8 [H, W, 3]) and go straight to the encoder, so a sequence of any
length needs memory for one frame. Every writer is atomic (SPEC section 4): it writes to a
temporary name beside the target and renames it into place only when the last frame is in;
an error or an interrupt deletes the temporary output and leaves any earlier file untouched.

- `.mp4`: H.264 (libx264) in yuv420p, which every browser plays, through the ffmpeg binary that
  imageio-ffmpeg ships. yuv420p needs even sides, so an odd-sized frame gets one extra row or
  column repeating its edge (never a resize).
- `.gif`: written frame by frame: each frame is quantised to its own 256-colour palette with
  Pillow and appended as a GIF image block with a local colour table; the file loops forever.
  GIF delays are whole hundredths of a second: the frame rate becomes 100 / round(100 / fps).
- a folder (a path without a suffix, or an existing folder): `frame_0000.png`, `frame_0001.png`, ...
  written into a temporary folder that is renamed into place at the end. An existing target
  folder is replaced only if it holds nothing but such frames.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
from PIL import Image

from .errors import OutputError
from .fileio import atomic_path
from .image import image_strip

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameWriter",
    "OutputError",
    "OutputKind",
    "check_writable",
    "default_strip_path",
    "open_frame_writer",
    "output_kind",
    "save_strip",
    "strip_indices",
]

OutputKind = Literal["mp4", "gif", "folder", "image"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FRAME_NAME = "frame_{:04d}.png"
_FRAME_RE = re.compile(r"frame_\d{4,}\.png")


def output_kind(path: str | os.PathLike) -> OutputKind:
    """What `path` asks for: 'mp4', 'gif', 'image' (one PNG/JPEG/WebP) or 'folder' of frames.

    Raises ValueError for other suffixes (e.g. `.avi`), naming the supported ones.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "folder"
    if suffix == ".mp4":
        return "mp4"
    if suffix == ".gif":
        return "gif"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix == "":
        return "folder"
    raise ValueError(
        f"unsupported output {str(path)!r}: use a .mp4 or .gif file, a .png/.jpg image, "
        "or a folder (a path without a suffix)"
    )


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, before any rendering, with one OutputError line if `path` cannot be created.

    Probes the nearest existing folder on the way to `path` with a temporary file (removed again);
    creates nothing else.
    """
    path = Path(path).absolute()
    existing = next(p for p in [path.parent, *path.parent.parents] if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot write ({existing} is a file, not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".i2s-write-test.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None


def default_strip_path(out: str | os.PathLike) -> Path:
    """Where the strip of selected frames goes beside a video/folder output: `<out>_strip.png`."""
    out = Path(out)
    stem = out.name if out.suffix.lower() not in (".mp4", ".gif") else out.stem
    return out.with_name(f"{stem}_strip.png")


def strip_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over [0, num_frames), first and last included."""
    if num_frames <= 0 or count <= 0:
        return []
    if count >= num_frames:
        return list(range(num_frames))
    if count == 1:
        return [0]
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def save_strip(frames: Sequence[np.ndarray | Image.Image], path: str | os.PathLike) -> Path:
    """One row of images, left to right, written atomically (PNG unless the suffix says else)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            image_strip(frames).save(tmp)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


class FrameWriter:
    """Base class: `append(frame)` uint8 [H, W, 3] frames, then `close()` to publish atomically.

    As a context manager it closes on success and aborts (deletes the temporary output) on error.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the frames
        self._done = False

    def append(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (1, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        if frame.shape[2] == 1:
            frame = np.repeat(frame, 3, axis=2)
        size = (frame.shape[1], frame.shape[0])
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise ValueError(f"frame {self.num_frames} is {size}, the first frame was {self.size}")
        try:
            self._write(frame)
        except OSError as e:
            self.abort()
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self.num_frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place. Raises OutputError if nothing was written."""
        if self._done:
            return self.path
        if self.num_frames == 0:
            self.abort()
            raise OutputError(f"{self.path}: no frames to write")
        try:
            self._finish()
        except OSError as e:
            self.abort()
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self._done = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; the target path is left as it was."""
        if not self._done:
            self._done = True
            self._discard()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # subclasses
    def _write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError


def open_frame_writer(path: str | os.PathLike, fps: float = 30.0) -> FrameWriter:
    """A streaming writer for `path` (kind from `output_kind`). Fails early, before any frame is
    rendered, with OutputError if the location cannot be written."""
    path = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    kind = output_kind(path)
    check_writable(path)
    try:
        if kind == "mp4":
            return _Mp4Writer(path, fps)
        if kind == "gif":
            return _GifWriter(path, fps)
        if kind == "folder":
            return _FolderWriter(path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    raise ValueError(f"{path}: a single image is not a frame sequence; use .mp4, .gif or a folder")


def _temp_file_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Mp4Writer(FrameWriter):
    """H.264 / yuv420p through the ffmpeg binary bundled with imageio-ffmpeg."""

    def __init__(self, path: Path, fps: float, crf: int = 18) -> None:
        super().__init__(path)
        self.fps = fps
        self.crf = crf  # x264 constant rate factor: 18 is visually lossless, 23 is x264's default
        self._tmp = _temp_file_beside(path)  # fails here if the folder is not writable
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (ffmpeg's stderr; closed at the end)
        self._proc: subprocess.Popen | None = None
        self._even: tuple[int, int] = (0, 0)

    def _start(self, width: int, height: int) -> None:
        import imageio_ffmpeg

        self._even = (width + width % 2, height + height % 2)
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel", "error",
            "-f", "rawvideo",
            "-pix_fmt", "rgb24",
            "-s", f"{self._even[0]}x{self._even[1]}",
            "-r", f"{self.fps:g}",
            "-i", "-",
            "-an",
            "-c:v", "libx264",
            "-pix_fmt", "yuv420p",
            "-crf", str(self.crf),
            "-movflags", "+faststart",
            "-f", "mp4",
            str(self._tmp),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log
        )

    def _write(self, frame: np.ndarray) -> None:
        if self._proc is None:
            self._start(frame.shape[1], frame.shape[0])
        pad_w = self._even[0] - frame.shape[1]
        pad_h = self._even[1] - frame.shape[0]
        if pad_w or pad_h:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame.tobytes())
        except BrokenPipeError:
            raise OSError(f"ffmpeg stopped: {self._ffmpeg_message()}") from None

    def _finish(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        code = self._proc.wait()
        if code != 0:
            raise OSError(f"ffmpeg failed (exit code {code}): {self._ffmpeg_message()}")
        os.replace(self._tmp, self.path)
        self._log.close()

    def _discard(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._tmp.unlink(missing_ok=True)
        self._log.close()

    def _ffmpeg_message(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no message"


class _GifWriter(FrameWriter):
    """A looping GIF89a written frame by frame (local colour table per frame)."""

    def __init__(self, path: Path, fps: float) -> None:
        super().__init__(path)
        self.delay_cs = min(max(1, round(100 / fps)), 65535)  # GIF frame delay in 1/100 s
        self._tmp = _temp_file_beside(path)
        self._f = open(self._tmp, "wb")  # noqa: SIM115 (closed in _finish/_discard)

    def _write(self, frame: np.ndarray) -> None:
        if self.num_frames == 0:
            h, w = frame.shape[:2]
            self._f.write(b"GIF89a")
            # logical screen: size, no global colour table, 8-bit colour resolution
            self._f.write(struct.pack("<HHBBB", w, h, 0x70, 0, 0))
            # NETSCAPE2.0 application extension: loop forever
            self._f.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00")
        table, descriptor_flags, box, data = _encode_gif_frame(frame)
        # graphic control extension: disposal "leave in place", delay, no transparency
        self._f.write(b"\x21\xf9\x04\x04" + struct.pack("<H", self.delay_cs) + b"\x00\x00")
        size_bits = (len(table) // 3).bit_length() - 2  # table holds 2^(size_bits + 1) colours
        flags = 0x80 | (descriptor_flags & 0x40) | size_bits  # local table, keep interlacing
        self._f.write(b"\x2c" + box + bytes([flags]) + table + data)

    def _finish(self) -> None:
        self._f.write(b"\x3b")  # trailer
        self._f.close()
        os.replace(self._tmp, self.path)

    def _discard(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)


def _encode_gif_frame(frame: np.ndarray) -> tuple[bytes, int, bytes, bytes]:
    """Encode one RGB frame as a single-image GIF with Pillow and cut out its parts:
    (colour table, image-descriptor flags, descriptor box (left, top, width, height), LZW data)."""
    img = Image.fromarray(frame).quantize(colors=256)
    buf = BytesIO()
    img.save(buf, format="GIF")
    b = buf.getvalue()
    pos = 13
    screen_flags = b[10]
    table = b""
    if screen_flags & 0x80:
        n = 3 * 2 ** ((screen_flags & 0x07) + 1)
        table, pos = b[pos : pos + n], pos + n
    while b[pos] == 0x21:  # skip extensions: introducer, label, sub-blocks
        pos += 2
        pos = _skip_sub_blocks(b, pos)
    if b[pos] != 0x2C:
        raise OSError("Pillow wrote an unexpected GIF layout")
    box, flags = b[pos + 1 : pos + 9], b[pos + 9]
    pos += 10
    if flags & 0x80:
        n = 3 * 2 ** ((flags & 0x07) + 1)
        table, pos = b[pos : pos + n], pos + n
    if not table:
        raise OSError("Pillow wrote a GIF frame without a colour table")
    start = pos
    pos = _skip_sub_blocks(b, pos + 1)  # LZW minimum code size, then the data sub-blocks
    return table, flags, box, b[start:pos]


def _skip_sub_blocks(b: bytes, pos: int) -> int:
    while b[pos] != 0:
        pos += b[pos] + 1
    return pos + 1


class _FolderWriter(FrameWriter):
    """`frame_0000.png`, ... in a temporary folder, renamed into place at the end."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path}: exists and is a file, not a folder of frames")
        if path.is_dir():
            others = sorted(p.name for p in path.iterdir() if not _FRAME_RE.fullmatch(p.name))
            if others:
                listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise OutputError(
                    f"{path}: the folder exists and holds other files ({listed}); "
                    "choose a new or empty folder"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(self._tmp, 0o777 & ~_umask())  # mkdtemp makes 0700

    def _write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame).save(self._tmp / FRAME_NAME.format(self.num_frames))

    def _finish(self) -> None:
        old = None
        if self.path.is_dir():
            old = Path(
                tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent)
            )
            os.replace(self.path, old / "frames")
        try:
            os.replace(self._tmp, self.path)
        except OSError:
            if old is not None:
                os.replace(old / "frames", self.path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _discard(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
