"""FFHQ-style face alignment (issue 4, item 3): the crop the FFHQ generators were trained on.

The recipe is NVIDIA's `recreate_aligned_images` (NVlabs/ffhq-dataset, `download_ffhq.py`),
re-implemented here from its description, with dlib's 68-point landmarks in place of the
landmarks stored in the FFHQ metadata:

1. eye centres = mean of each eye's 6 landmarks, mouth centre = mean of the two outer mouth
   corners (points 48 and 54); `eye_to_eye`, `eye_to_mouth` join them;
2. the crop is a square oriented along x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1]
   (the eye line averaged with the eye-mouth axis turned by 90 degrees), half side
   max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|), centred 0.1 eye_to_mouth below the eye midpoint;
3. shrink the photo (integer factor, antialiased) while the crop is more than twice the output,
   crop to the quad plus a 10% border, and where the quad leaves the photo pad by reflection,
   blurred and faded to the median colour towards the edges (as FFHQ does);
4. warp the quad to `transform_size` px (bilinear) and downsample to `output_size` (Lanczos).

In the aligned image the eye midpoint sits on column ~0.5 and row (0.5 - 0.05 |e2m| / s) of the
side, where s = max(2 |e2e|, 1.8 |e2m|) is the half side: between 0.472 and 0.5 (~484-512 px at
1024), and the eyes are at most a quarter of the side apart (`source_to_aligned` gives the exact
positions of any source point).

dlib is an optional extra: `pip install 'image2stylegan[align]'` (dlib-bin and
face-recognition-models, which ships the 68-landmark model file, so nothing is downloaded).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, NoReturn

import numpy as np
from PIL import Image

from .errors import I2SError, ImageError
from .image import load_image

__all__ = [
    "AlignDependencyError",
    "AlignError",
    "Face",
    "MultipleFacesWarning",
    "align_face",
    "apply_alignment",
    "detect_faces",
    "detect_landmarks",
    "ffhq_quad",
    "landmarks_model_path",
    "load_face_models",
    "select_face",
    "source_to_aligned",
]

INSTALL_HINT = "face alignment needs the optional extra: pip install 'image2stylegan[align]'"
LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
DETECT_UPSAMPLE = (1, 2)  # dlib detector upsampling: 1, then 2 when nothing was found
DETECT_MAX_SIDE = 1280  # larger photos are detected on a downscaled copy (landmarks at full size)

FacePolicy = Literal["largest", "only"] | int


class AlignError(ImageError):
    """No usable face in an image (none found, or the requested one does not exist)."""


class AlignDependencyError(I2SError):
    """dlib or the 68-landmark model is not installed."""


class MultipleFacesWarning(UserWarning):
    """Several faces were found; the one used is named in the message."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face (compared by identity: it holds an array)."""

    box: tuple[int, int, int, int]  # detector box (left, top, right, bottom), source pixels
    score: float  # detector confidence (dlib HOG margin; > 0 = detected)
    landmarks: np.ndarray  # [68, 2] float64 (x, y), dlib/iBUG 68-point order

    @property
    def quad(self) -> np.ndarray:
        """[4, 2] FFHQ crop corners (see `ffhq_quad`)."""
        return ffhq_quad(self.landmarks)

    @property
    def size(self) -> float:
        """Side of the FFHQ crop square in source pixels: what "largest" compares."""
        q = self.quad
        return float(np.hypot(*(q[3] - q[0])))


# ---------------------------------------------------------------------------------------------
# dlib models (lazy import, cached per process)


def _import_dlib() -> ModuleType:
    try:
        return importlib.import_module("dlib")
    except ImportError:
        raise AlignDependencyError(f"{INSTALL_HINT} (dlib is not installed)") from None


def landmarks_model_path() -> Path:
    """Path of dlib's `shape_predictor_68_face_landmarks.dat` inside face-recognition-models.

    The file is located from the package's install folder without importing it: the package's
    own `pose_predictor_model_location()` needs `pkg_resources`, which setuptools >= 81 no longer
    ships. That function is still tried when the file is not where expected.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise AlignDependencyError(
            f"{INSTALL_HINT} (face-recognition-models, which ships {LANDMARKS_FILE}, is not "
            "installed)"
        )
    for folder in spec.submodule_search_locations or []:
        candidate = Path(folder) / "models" / LANDMARKS_FILE
        if candidate.is_file():
            return candidate
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module("face_recognition_models")
            candidate = Path(module.pose_predictor_model_location())
    except Exception:
        return _missing_model()
    if candidate.is_file():
        return candidate
    return _missing_model()


def _missing_model() -> NoReturn:
    raise AlignDependencyError(
        f"{INSTALL_HINT} ({LANDMARKS_FILE} is missing from the installed face-recognition-models; "
        "reinstall it)"
    )


@functools.lru_cache(maxsize=4)
def _load_models(predictor_path: str) -> tuple[Any, Any, Any]:  # dlib, detector, predictor
    dlib = _import_dlib()
    try:
        predictor = dlib.shape_predictor(predictor_path)
    except RuntimeError as e:
        raise AlignDependencyError(
            f"{predictor_path}: cannot load the landmark model ({e})"
        ) from None
    return dlib, dlib.get_frontal_face_detector(), predictor


def _models(predictor_path: str | os.PathLike | None = None) -> tuple[Any, Any, Any]:
    path = Path(predictor_path) if predictor_path is not None else landmarks_model_path()
    return _load_models(str(path))


def load_face_models(predictor_path: str | os.PathLike | None = None) -> None:
    """Load (once per process) dlib's face detector and 68-landmark model.

    Call it up front to fail early: raises `AlignDependencyError` when the extra is missing.
    """
    _models(predictor_path)


# ---------------------------------------------------------------------------------------------
# Detection


def detect_faces(
    img: Image.Image,
    upsample: Sequence[int] = DETECT_UPSAMPLE,
    max_side: int | None = DETECT_MAX_SIDE,
    predictor_path: str | os.PathLike | None = None,
) -> list[Face]:
    """All faces in `img` with their 68 landmarks, largest FFHQ crop first.

    `upsample`: dlib detector upsampling levels tried in turn until one finds a face (each level
    doubles the image: 1 finds faces from ~40 px, 2 from ~20 px). `max_side`: photos whose longer
    side exceeds it are detected on a downscaled copy (None: never); landmarks are always
    predicted on the full-size image.
    """
    dlib, detector, predictor = _models(predictor_path)
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))  # [H, W, 3]
    scale = 1.0
    small = rgb
    if max_side is not None and max(img.size) > max_side:
        scale = max(img.size) / max_side
        size = (max(1, round(img.width / scale)), max(1, round(img.height / scale)))
        small = np.ascontiguousarray(
            np.asarray(img.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)
        )
    rects, scores = [], []
    for level in upsample:
        rects, scores, _ = detector.run(small, int(level), 0.0)
        if len(rects):
            break
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        box = tuple(
            round(v * scale) for v in (rect.left(), rect.top(), rect.right(), rect.bottom())
        )
        shape = predictor(rgb, dlib.rectangle(*box))
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)  # [68, 2]
        faces.append(Face(box=box, score=float(score), landmarks=landmarks))
    faces.sort(key=lambda f: f.size, reverse=True)
    return faces


def detect_landmarks(img: Image.Image, **kwargs: Any) -> list[np.ndarray]:
    """The 68 landmarks ([68, 2] float64 (x, y)) of every face in `img`, largest first."""
    return [face.landmarks for face in detect_faces(img, **kwargs)]


def select_face(
    faces: Sequence[Face], face: FacePolicy = "largest", name: str = "the image"
) -> Face:
    """Pick one face of `detect_faces`' list (largest first).

    `face`: "largest" (warns with `MultipleFacesWarning` when there are several), "only" (an
    error when there are several), or an index into the list (0 = largest).
    """
    n = len(faces)
    if n == 0:
        raise AlignError(
            f"no face found in {name} (dlib's frontal face detector needs a roughly frontal, "
            "unoccluded face at least ~20 px wide)"
        )
    if isinstance(face, bool) or not isinstance(face, (int, np.integer, str)):
        raise ValueError(f"face must be 'largest', 'only' or an index, got {face!r}")
    if isinstance(face, str):
        if face not in ("largest", "only"):
            raise ValueError(f"face must be 'largest', 'only' or an index, got {face!r}")
        if n > 1 and face == "only":
            raise AlignError(
                f"{n} faces found in {name}; expected exactly one (pass --face N to pick one, "
                "0 = largest)"
            )
        if n > 1:
            warnings.warn(
                f"{n} faces found in {name}; using the largest (pass --face N to pick another, "
                f"0..{n - 1}, largest first)",
                MultipleFacesWarning,
                stacklevel=2,
            )
        return faces[0]
    if not 0 <= face < n:
        raise AlignError(
            f"face {face} asked for, but {name} has {n} face{'s' if n > 1 else ''} "
            f"(valid: 0..{n - 1}, largest first)"
        )
    return faces[int(face)]


# ---------------------------------------------------------------------------------------------
# FFHQ geometry


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """FFHQ crop quad [4, 2] (NW, SW, SE, NE corners, (x, y)) from 68 landmarks [68, 2].

    The FFHQ recipe: e = eye_to_eye, m = eye_to_mouth, x = e - flipud(m) * [-1, 1] scaled to
    length max(2 |e|, 1.8 |m|), y = x turned +90 degrees (pointing down the face),
    centre c = eye_avg + 0.1 m; corners c - x - y, c - x + y, c + x + y, c + x - y.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape [68, 2], got {lm.shape}")
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5  # outer mouth corners
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])  # [4, 2]


def source_to_aligned(points: np.ndarray, quad: np.ndarray, output_size: int) -> np.ndarray:
    """Map source pixel coordinates [..., 2] into the aligned image's pixel coordinates.

    The quad is a square, so the map is affine: p = q0 + u (q3 - q0) + v (q1 - q0), and
    (u, v) in [0, 1]^2 lands on pixel (u, v) * output_size - 0.5 (pixel centres at integers, as
    dlib reports landmarks). Exact up to the sub-pixel rounding of the recipe's shrink step.
    """
    quad = np.asarray(quad, dtype=np.float64)
    A = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)  # [2, 2] columns: u, v axes
    rel = np.asarray(points, dtype=np.float64) - quad[0]
    uv = np.linalg.solve(A, rel.reshape(-1, 2).T).T.reshape(rel.shape)
    return uv * output_size - 0.5


def apply_alignment(
    img: Image.Image,
    quad: np.ndarray,
    output_size: int = 1024,
    transform_size: int | None = None,
    enable_padding: bool = True,
) -> Image.Image:
    """Cut the FFHQ quad out of `img` and warp it to an `output_size` square RGB image.

    `transform_size`: the intermediate warp resolution (None: 4 * output_size, the official
    4096 for 1024), downsampled with Lanczos. `enable_padding`: fill the parts of the quad outside
    the photo with the official blurred reflection (else black).
    """
    if output_size < 1:
        raise ValueError(f"output_size must be positive, got {output_size}")
    transform_size = 4 * output_size if transform_size is None else transform_size
    if transform_size < output_size:
        raise ValueError(f"transform_size {transform_size} is below output_size {output_size}")
    img = img.convert("RGB") if img.mode != "RGB" else img
    quad = np.array(quad, dtype=np.float64)  # [4, 2], a copy we update in place
    qsize = float(np.hypot(*(quad[3] - quad[0])))

    # Shrink: antialiased integer downscale while the quad is over twice the output size.
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(img.width / shrink)), int(np.rint(img.height / shrink)))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop to the quad's bounding box plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    crop = (
        max(lo[0] - border, 0),
        max(lo[1] - border, 0),
        min(hi[0] + border, img.width),
        min(hi[1] + border, img.height),
    )
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad where the quad (plus border) leaves the photo.
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = (
        max(-lo[0] + border, 0),
        max(-lo[1] + border, 0),
        max(hi[0] - img.width + border, 0),
        max(hi[1] - img.height + border, 0),
    )
    if enable_padding and max(pad) > border - 4:
        left, top, right, bottom = (int(p) for p in np.maximum(pad, int(np.rint(qsize * 0.3))))
        pad = (left, top, right, bottom)
        img = _pad_reflect_blur(img, pad, blur=qsize * 0.02)
        quad += pad[:2]

    # Warp the quad to a square, then downsample.
    img = img.transform(
        (transform_size, transform_size),
        Image.Transform.QUAD,
        tuple((quad + 0.5).flatten()),
        Image.Resampling.BILINEAR,
    )
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return img


def _pad_reflect_blur(img: Image.Image, pad: tuple[int, int, int, int], blur: float) -> Image.Image:
    """FFHQ padding: reflect by `pad` = (left, top, right, bottom), then towards the new edges
    blend into a Gaussian blur (sigma `blur`) and into the median colour."""
    left, top, right, bottom = pad
    a = np.pad(np.asarray(img, dtype=np.float32), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w, _ = a.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    # 0 inside the photo, rising to 1 at the outer edge of each padded side.
    with np.errstate(divide="ignore", invalid="ignore"):
        mask = np.maximum(
            1.0 - np.minimum(np.float32(x) / left, np.float32(w - 1 - x) / right),
            1.0 - np.minimum(np.float32(y) / top, np.float32(h - 1 - y) / bottom),
        )
    a += (_gaussian_blur(a, blur) - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255)), "RGB")


def _gaussian_blur(a: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur of [H, W, C] over H and W, channels untouched: the same filter as
    `scipy.ndimage.gaussian_filter(a, [sigma, sigma, 0])` (radius int(truncate * sigma + 0.5),
    half-sample symmetric edges), computed as one FFT convolution per axis."""
    out = a
    for axis in (0, 1):
        out = _gaussian_filter1d(out, sigma, axis, truncate)
    return out.astype(a.dtype, copy=False)


def _gaussian_filter1d(a: np.ndarray, sigma: float, axis: int, truncate: float) -> np.ndarray:
    radius = int(truncate * float(sigma) + 0.5)
    if radius < 1:
        return a
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()  # [2r + 1], symmetric, so convolution == correlation
    widths = [(0, 0)] * a.ndim
    widths[axis] = (radius, radius)
    padded = np.pad(a, widths, mode="symmetric")  # scipy's "reflect": d c b a | a b c d
    n = a.shape[axis]
    full = padded.shape[axis] + kernel.size - 1
    nfft = _fast_fft_len(full)
    spectrum = np.fft.rfft(padded, n=nfft, axis=axis)
    shape = [1] * a.ndim
    shape[axis] = -1
    spectrum *= np.fft.rfft(kernel, n=nfft).reshape(shape)
    conv = np.fft.irfft(spectrum, n=nfft, axis=axis)
    index = [slice(None)] * a.ndim
    index[axis] = slice(2 * radius, 2 * radius + n)  # the outputs centred on the original samples
    return conv[tuple(index)]


def _fast_fft_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (an FFT length pocketfft handles fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


# ---------------------------------------------------------------------------------------------
# The whole recipe


def align_face(
    image: Image.Image | str | os.PathLike,
    output_size: int = 1024,
    transform_size: int | None = None,
    enable_padding: bool = True,
    face: FacePolicy = "largest",
    name: str | None = None,
    predictor_path: str | os.PathLike | None = None,
) -> Image.Image:
    """FFHQ-align the face in `image` (a PIL image or an image file): an `output_size` square
    RGB crop laid out like the FFHQ training images.

    - `transform_size`: intermediate warp size (None: 4 * output_size; FFHQ used 4096 for 1024).
    - `enable_padding`: fill crop parts outside the photo with FFHQ's blurred reflection.
    - `face`: which face when there are several (largest crop first): "largest" (warns with
      `MultipleFacesWarning`), "only" (several is an error), or an index (0 = largest).
    - `name`: how messages name the image (default: the file path, or "the image").

    Raises `AlignError` (an `ImageError`) when no face, or not the requested one, is found,
    `ImageError` when the file cannot be decoded, and `AlignDependencyError` when dlib or its
    landmark model is not installed.
    """
    if isinstance(image, Image.Image):
        img = image
        name = name or "the image"
    else:
        img = load_image(image)
        name = name or str(image)
    faces = detect_faces(img, predictor_path=predictor_path)
    chosen = select_face(faces, face, name)
    return apply_alignment(
        img,
        chosen.quad,
        output_size=output_size,
        transform_size=transform_size,
        enable_padding=enable_padding,
    )
