"""Named weights: registry name -> official download addresses, size, sha256, cache path.

`resolve_weights("ffhq-1024")` returns the path of a verified local copy, downloading it into the
cache (SPEC section 4: `$IMAGE2STYLEGAN_HOME`, default `~/.cache/image2stylegan`) when missing.
Offline, or when every address fails, it raises one `WeightsError` that names the official
address and the exact path to place the file at.

Checksums: we record only numbers someone has published for the exact file, and say where each
comes from (`WeightsEntry.checksum_source`). NVIDIA published no checksums for the StyleGAN
pickles; where nobody published a size or sha256 we verify what we can, and the sha256 computed
at the first download is kept beside the file so `weights verify` can later detect corruption.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import WeightsError
from ..fileio import atomic_write_text, sha256_file

__all__ = [
    "REGISTRY",
    "VerifyResult",
    "WeightsEntry",
    "cache_dir",
    "cached_path",
    "download_entry",
    "get_entry",
    "is_registry_name",
    "resolve_weights",
    "verify_cached",
]

log = logging.getLogger(__name__)

Kind = Literal["generator", "vgg16", "lpips"]

NO_CHECKSUM = "none published: size verified only"
NO_SIZE_OR_CHECKSUM = (
    "none published: neither size nor sha256 is published for this file; it is checked not to be "
    "an HTML page, and its sha256 is recorded at the first download"
)


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable file and what we know about it."""

    name: str  # registry name, e.g. "ffhq-1024"
    kind: Kind  # what loads it: load_generator ("generator"), load_vgg16 ("vgg16"), LPIPS ("lpips")
    filename: str  # file name in the cache folder (the official name unless that is ambiguous)
    urls: tuple[str, ...]  # download addresses, tried in order; the first is the official one
    size: int | None  # bytes; None = nobody published it
    sha256: str | None  # lowercase hex; None = nobody published it (never invented)
    checksum_source: str  # where size/sha256 come from, or why there are none
    description: str  # one line for `weights list`
    architecture: str | None = None  # generators: "stylegan1" | "stylegan2" | "stylegan2-ada" |
    #   "stylegan3-t" | "stylegan3-r"
    resolution: int | None = None  # generators: output side length (img_resolution)
    domain: str | None = None  # generators: what it draws (training set)
    content_size: tuple[int, int] | None = None  # (w, h) of the valid region when not square
    default_align: bool = False  # `embed --align` default: FFHQ face alignment for face models
    license: str | None = None  # licence of the weights, as stated by their publisher


_STYLEGAN1_LICENSE = "CC BY-NC 4.0 (NVIDIA)"
_STYLEGAN2_LICENSE = "Nvidia Source Code License-NC"


_STYLEGAN3_LICENSE = "NVIDIA Source Code License for StyleGAN3 (non-commercial)"
_NGC_STYLEGAN3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files"
_STYLEGAN3_CONFIGS = {"t": "translation equivariant", "r": "translation and rotation equivariant"}
_STYLEGAN3_DATASETS = {  # file-name part -> (description, domain)
    "ffhq": ("FFHQ", "faces (FFHQ)"),
    "ffhqu": ("FFHQ-U", "faces (FFHQ-U: unaligned crops)"),
    "metfaces": ("MetFaces", "faces in art (MetFaces)"),
    "metfacesu": ("MetFaces-U", "faces in art (MetFaces-U: unaligned crops)"),
    "afhqv2": ("AFHQv2", "animal faces (AFHQv2: cats, dogs, wildlife)"),
}
# The ten pickles NVlabs/stylegan3 README.md (c233a919a6fa) lists under the NGC address.
_STYLEGAN3_FILES = tuple(
    (cfg, dataset, res)
    for cfg in ("t", "r")
    for dataset, res in (
        ("ffhq", 1024),
        ("ffhqu", 1024),
        ("ffhqu", 256),
        ("metfaces", 1024),
        ("metfacesu", 1024),
        ("afhqv2", 512),
    )
)


def _gdrive(file_id: str) -> str:
    """The `uc?id=` address as written in NVIDIA's READMEs (the downloader adds the direct form)."""
    return f"https://drive.google.com/uc?id={file_id}"


# Sources of the addresses:
# - StyleGAN1 pickles: Google Drive ids from NVlabs/stylegan README.md and pretrained_example.py /
#   generate_figures.py (commit 1e0d5c781384ef12b50ef20a62fee5d78b38e88f). NVIDIA never moved these
#   to its CDN (only the metrics networks are under nvlabs-fi-cdn.nvidia.com/stylegan/).
# - StyleGAN2 config-f: NVlabs/stylegan2 pretrained_networks.py (bf0fe0baba9f: nvlabs-fi-cdn; the
#   initial commit 7d3145d23013 had the Google Drive id; eecd09cc8a06 the older CloudFront host).
# - stylegan2-ada-pytorch: NVlabs/stylegan2-ada-pytorch README.md (d72cc7d041b4).
# - StyleGAN3: NVlabs/stylegan3 README.md (c233a919a6fa), the NVIDIA NGC catalogue address.
# - VGG-16: torchvision's model URL; keras.applications.vgg16 WEIGHTS_PATH_NO_TOP and the original
#   fchollet/deep-learning-models v0.1 release it replaced.
# - LPIPS: richzhang/PerceptualSimilarity master, lpips/weights/v0.1/vgg.pth (identical to the copy
#   in the lpips 0.1.4 wheel; second address pinned to commit 082bb24f84c0).
_ENTRIES: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="ffhq-1024",
        kind="generator",
        filename="karras2019stylegan-ffhq-1024x1024.pkl",
        urls=(_gdrive("1MEGjdvVpUsu1jB4zrXZN7Y4kBBOzizDQ"),),
        size=324_733_157,
        sha256="f277a43711447812d809b2fdd7748b945cfd7bdcd391d66e557a68d590309aab",
        checksum_source=(
            "Git LFS pointer to this file in the public GitHub repository yypylypiv0422/babygan "
            "(commit b6346459); NVIDIA published none"
        ),
        description="StyleGAN FFHQ 1024x1024, the paper's generator (Karras et al. 2019)",
        architecture="stylegan1",
        resolution=1024,
        domain="faces (FFHQ)",
        default_align=True,
        license=_STYLEGAN1_LICENSE,
    ),
    WeightsEntry(
        name="lsun-cat-256",
        kind="generator",
        filename="karras2019stylegan-cats-256x256.pkl",
        urls=(_gdrive("1MQywl0FNt6lHu8E_EUqnRbviagS7fbiJ"),),
        size=None,
        sha256=None,
        checksum_source=NO_SIZE_OR_CHECKSUM,
        description="StyleGAN LSUN Cat 256x256 (Karras et al. 2019)",
        architecture="stylegan1",
        resolution=256,
        domain="cats (LSUN Cat)",
        license=_STYLEGAN1_LICENSE,
    ),
    WeightsEntry(
        name="lsun-car-512x384",
        kind="generator",
        filename="karras2019stylegan-cars-512x384.pkl",
        urls=(_gdrive("1MJ6iCfNtMIRicihwRorsM3b7mmtmK9c3"),),
        size=None,
        sha256=None,
        checksum_source=NO_SIZE_OR_CHECKSUM,
        description="StyleGAN LSUN Car 512x384 content in a 512x512 frame (Karras et al. 2019)",
        architecture="stylegan1",
        resolution=512,
        domain="cars (LSUN Car)",
        content_size=(512, 384),
        license=_STYLEGAN1_LICENSE,
    ),
    WeightsEntry(
        name="lsun-bedroom-256",
        kind="generator",
        filename="karras2019stylegan-bedrooms-256x256.pkl",
        urls=(_gdrive("1MOSKeGF0FJcivpBI7s63V9YHloUTORiF"),),
        size=None,
        sha256=None,
        checksum_source=NO_SIZE_OR_CHECKSUM,
        description="StyleGAN LSUN Bedroom 256x256 (Karras et al. 2019)",
        architecture="stylegan1",
        resolution=256,
        domain="bedrooms (LSUN Bedroom)",
        license=_STYLEGAN1_LICENSE,
    ),
    WeightsEntry(
        name="ffhq-1024-stylegan2",
        kind="generator",
        filename="stylegan2-ffhq-config-f.pkl",
        urls=(
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-ffhq-config-f.pkl",
            _gdrive("1Mgh-jglZjgksupF0XLl0KzuOqd1LXcoE"),
            "http://d36zk2xti64re0.cloudfront.net/stylegan2/networks/stylegan2-ffhq-config-f.pkl",
        ),
        size=381_673_535,
        sha256="adf127ea7bb8a7788c8bdeda3c9937f7310b669b09ecf799ca53a631ff46948d",
        checksum_source=(
            "published beside its mirror by github.com/clibdev/stylegan2-pytorch (README), same "
            "sha256 and size pinned by other public code downloading the NVIDIA address; NVIDIA "
            "published none"
        ),
        description="StyleGAN2 config-f FFHQ 1024x1024, TensorFlow pickle (Karras et al. 2020)",
        architecture="stylegan2",
        resolution=1024,
        domain="faces (FFHQ)",
        default_align=True,
        license=_STYLEGAN2_LICENSE,
    ),
    WeightsEntry(
        name="ffhq-1024-ada",
        kind="generator",
        filename="stylegan2-ada-pytorch-ffhq.pkl",  # published as "ffhq.pkl"
        urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl",),
        size=381_624_121,
        sha256="a205a346e86a9ddaae702e118097d014b7b8bd719491396a162cca438f2f524c",
        checksum_source=(
            "the same sha256 and size pinned by several independent public repositories that "
            "download the NVIDIA address; NVIDIA published none"
        ),
        description="StyleGAN2 FFHQ 1024x1024, stylegan2-ada-pytorch pickle (Karras et al. 2020)",
        architecture="stylegan2-ada",
        resolution=1024,
        domain="faces (FFHQ)",
        default_align=True,
        license=_STYLEGAN2_LICENSE,
    ),
    *(
        WeightsEntry(
            name=f"{dataset}-{res}-stylegan3-{cfg}",
            kind="generator",
            filename=f"stylegan3-{cfg}-{dataset}-{res}x{res}.pkl",
            urls=(f"{_NGC_STYLEGAN3}/stylegan3-{cfg}-{dataset}-{res}x{res}.pkl",),
            size=None,
            sha256=None,
            checksum_source=NO_SIZE_OR_CHECKSUM,
            description=(
                f"StyleGAN3-{cfg.upper()} ({_STYLEGAN3_CONFIGS[cfg]}) "
                f"{_STYLEGAN3_DATASETS[dataset][0]} {res}x{res}, NVlabs/stylegan3 pickle "
                "(Karras et al. 2021)"
            ),
            architecture=f"stylegan3-{cfg}",
            resolution=res,
            domain=_STYLEGAN3_DATASETS[dataset][1],
            default_align=dataset != "afhqv2",  # the face datasets were cropped as FFHQ
            license=_STYLEGAN3_LICENSE,
        )
        for cfg, dataset, res in _STYLEGAN3_FILES
    ),
    WeightsEntry(
        name="vgg16-torchvision",
        kind="vgg16",
        filename="vgg16-397923af.pth",
        urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
        size=553_433_881,
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        checksum_source=(
            "torchvision publishes the sha256 prefix 397923af in the file name (torch.hub "
            "check_hash); the full sha256 and the size are pinned by public code"
        ),
        description="VGG-16 ImageNet weights, torchvision state dict (PyTorch preprocessing)",
        license="BSD-3-Clause (torchvision); weights CC BY 4.0 (Simonyan & Zisserman)",
    ),
    WeightsEntry(
        name="vgg16-caffe",
        kind="vgg16",
        filename="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        urls=(
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "https://github.com/fchollet/deep-learning-models/releases/download/v0.1/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        size=58_889_256,
        sha256="bfe5187d0a272bed55ba430631598124cff8e880b98d38c9e56c8d66032abdc1",
        checksum_source=(
            "Keras publishes only MD5 6d6bbae143d832006294945121d1f1fc (keras.applications.vgg16); "
            "sha256 pinned by public code for the fchollet v0.1 release file; size from Keras "
            "download logs"
        ),
        description="VGG-16, original Caffe weights as converted for Keras, no top (the paper's)",
        license="CC BY 4.0 (Simonyan & Zisserman); MIT (Keras conversion)",
    ),
    WeightsEntry(
        name="lpips-vgg",
        kind="lpips",
        filename="lpips-v0.1-vgg.pth",  # published as lpips/weights/v0.1/vgg.pth
        urls=(
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
            "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/"
            "082bb24f84c091ea94de2867d34c4544f68e0963/lpips/weights/v0.1/vgg.pth",
        ),
        size=7_289,
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        checksum_source=(
            "computed from the copy shipped in the lpips 0.1.4 wheel on PyPI, identical to the "
            "file in richzhang/PerceptualSimilarity at commit 082bb24f84c0"
        ),
        description="LPIPS v0.1 linear layers on VGG-16 features (Zhang et al. 2018)",
        license="BSD-2-Clause",
    ),
)

REGISTRY: dict[str, WeightsEntry] = {entry.name: entry for entry in _ENTRIES}


# ------------------------------------------------------------------------------------------------
# Names and paths


def cache_dir() -> Path:
    """The weights cache: `$IMAGE2STYLEGAN_HOME`, default `~/.cache/image2stylegan` (SPEC 4)."""
    home = os.environ.get("IMAGE2STYLEGAN_HOME")
    if home:
        return Path(home).expanduser()
    return Path("~/.cache/image2stylegan").expanduser()


def is_registry_name(name: object) -> bool:
    """True if `name` is a registry name (e.g. "ffhq-1024"), not a file path."""
    return isinstance(name, str) and name in REGISTRY


def get_entry(name: str) -> WeightsEntry:
    """The registry entry `name`; an unknown name raises `WeightsError` listing the known ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise WeightsError(f"unknown weights name {name!r}; known names: {known}") from None


def cached_path(name: str) -> Path:
    """Where the file of entry `name` lives in the cache (also where to place a manual download)."""
    return cache_dir() / get_entry(name).filename


def _stamp_path(path: Path) -> Path:
    """Sidecar recording the sha256 we verified (so loads need not re-hash a 300 MB file)."""
    return path.with_name(path.name + ".sha256.json")


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        atomic_write_text(_stamp_path(path), json.dumps(record, indent=1) + "\n")
    except OSError as e:  # a read-only cache still works; we just re-hash next time
        log.debug("cannot write %s: %s", _stamp_path(path), e)


# ------------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one cached file: status is "OK", "MISSING" or "MISMATCH"."""

    name: str
    path: Path
    status: Literal["OK", "MISSING", "MISMATCH"]
    detail: str  # one line: what was checked, or expected vs got


def _check_file(entry: WeightsEntry, path: Path, rehash: bool) -> VerifyResult:
    """Compare a cached file against the entry's size and sha256 (or the sha256 recorded at
    download for entries with none published). `rehash=False` trusts an up-to-date stamp."""
    if not path.is_file():
        return VerifyResult(entry.name, path, "MISSING", f"not downloaded; expected at {path}")
    st = path.stat()
    if entry.size is not None and st.st_size != entry.size:
        return VerifyResult(
            entry.name,
            path,
            "MISMATCH",
            f"expected {entry.size:,} bytes, got {st.st_size:,} bytes",
        )
    stamp = _read_stamp(path)
    fresh = (
        stamp is not None
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
        and isinstance(stamp.get("sha256"), str)
    )
    digest = stamp["sha256"] if stamp is not None and fresh and not rehash else sha256_file(path)
    if entry.sha256 is not None:
        if digest != entry.sha256:
            return VerifyResult(
                entry.name, path, "MISMATCH", f"expected sha256 {entry.sha256}, got {digest}"
            )
        if not fresh:
            _write_stamp(path, digest)
        return VerifyResult(entry.name, path, "OK", "size and sha256 match the published values")
    # Nothing published: compare with what we recorded when it was first downloaded/placed.
    recorded = stamp.get("sha256") if stamp else None
    if recorded is not None and digest != recorded:
        return VerifyResult(
            entry.name,
            path,
            "MISMATCH",
            f"changed since download: recorded sha256 {recorded}, got {digest}",
        )
    if recorded is None or not fresh:
        _write_stamp(path, digest)
    what = "size matches the published value" if entry.size is not None else "no size published"
    return VerifyResult(
        entry.name, path, "OK", f"{what}; sha256 {digest} (none published; recorded locally)"
    )


def verify_cached(name: str) -> VerifyResult:
    """Recompute the size and sha256 of the cached file of `name` (`weights verify`)."""
    entry = get_entry(name)
    return _check_file(entry, cache_dir() / entry.filename, rehash=True)


# ------------------------------------------------------------------------------------------------
# Resolution and download


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `.locks/<name>.lock` beside `path` so that concurrent processes
    (e.g. torchrun ranks) do not download the same file at once. No-op without `fcntl`."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    lock_path = path.parent / ".locks" / (path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _place_hint(entry: WeightsEntry, path: Path) -> str:
    return f"download it from {entry.urls[0]} and place it at {path}"


def download_entry(name: str, force: bool = False, progress: bool = True) -> Path:
    """Download entry `name` into the cache (again, if `force`), verify it, return its path."""
    from .download import download

    entry = get_entry(name)
    path = cache_dir() / entry.filename
    with _lock(path):
        if path.exists() and not force:
            result = _check_file(entry, path, rehash=False)
            if result.status == "OK":
                return path
            raise WeightsError(
                f"{name}: the cached file {path} does not match ({result.detail}); delete it, or "
                f"run `image2stylegan weights download --force {name}`"
            )
        try:
            download(entry.urls, path, size=entry.size, sha256=entry.sha256, progress=progress)
        except WeightsError as e:
            raise WeightsError(f"{name}: {e}") from None
        _write_stamp(path, entry.sha256 or sha256_file(path))  # verified by download()
    return path


def resolve_weights(
    name: str,
    kind: str | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """Path of a verified local copy of registry entry `name`, downloading it if needed.

    kind:     expected entry kind ("generator", "vgg16", "lpips"); None = any.
    download: False = never touch the network (a missing file raises).
    progress: show a progress bar while downloading.
    """
    entry = get_entry(name)
    if kind is not None and entry.kind != kind:
        raise WeightsError(
            f"{name!r} names {entry.kind} weights, not {kind} weights; "
            f"{kind} names: {', '.join(n for n, e in REGISTRY.items() if e.kind == kind) or 'none'}"
        )
    path = cache_dir() / entry.filename
    if path.exists():
        result = _check_file(entry, path, rehash=False)
        if result.status == "OK":
            return path
        raise WeightsError(
            f"{name}: the cached file {path} does not match ({result.detail}); delete it, or run "
            f"`image2stylegan weights download --force {name}`"
        )
    if not download:
        raise WeightsError(f"{name} is not in the cache; {_place_hint(entry, path)}")
    return download_entry(name, progress=progress)
