"""The record of one embedded image: where its files go and what its latent file says.

`latent_metadata` is the one place the metadata of a latent file (SPEC section 4) is assembled,
and `write_record` the one place the files are written; the CLI, the web UI and the experiments
all get them through the embed runner, so the same settings give the same record.

Layouts (`OutputPaths`):
- `folder` (SPEC section 4; the CLI and the experiments): `OUT/<stem>/latent.npz`, `target.png`,
  `reconstruction.png`, `losses.csv`, optional `progress.mp4` and `mask.png` (a masked
  embedding's mask in the frame); while running a hidden `.checkpoint.pt` and `.progress/`
  (video frames). `OUT/metrics.csv`: one row of reconstruction metrics per image. Pivotal
  tuning (`embed.pti`) adds `generator.safetensors` (the tuned generator, native format) and
  `pti_losses.csv`, and `.pti_checkpoint.pt` while tuning; a shared tuning writes
  `OUT/generator.safetensors` (and `OUT/.pti_checkpoint.pt`) instead.
- `flat` (the web UI's run folders): `<name>.npz`, `<name>_target.png`,
  `<name>_reconstruction.png`, `<name>_losses.csv`, `<name>_progress.mp4`, `<name>_mask.png`,
  `<name>_generator.safetensors`, `<name>_pti_losses.csv`, and `metrics.csv` (and a shared
  tuning's `generator.safetensors`) in the folder.

Noise maps (Image2StyleGAN++ noise stage, or restarted noise): the latent file holds one float32
array `noise_00`, `noise_01`, ... [1, 1, h, w] per noise input, in the generator's layer order
(`latents.latent_noise` reads them back), so re-rendering the file reproduces reconstruction.png.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._version import __version__
from ..fileio import atomic_write_text
from ..image import save_image, tensor_to_pil
from ..latents import noise_arrays, save_latent
from .config import EmbedConfig
from .embedder import EmbedResult

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "PROGRESS_DIR",
    "PTI_CHECKPOINT_NAME",
    "SHARED_GENERATOR_NAME",
    "Layout",
    "OutputPaths",
    "latent_metadata",
    "read_metrics_csv",
    "run_record",
    "update_metrics_csv",
    "write_losses_csv",
    "write_record",
    "write_step_csv",
]

CHECKPOINT_NAME = ".checkpoint.pt"
PTI_CHECKPOINT_NAME = ".pti_checkpoint.pt"
SHARED_GENERATOR_NAME = "generator.safetensors"  # a shared pivotal tuning's, in the run folder
METRICS_NAME = "metrics.csv"
PROGRESS_DIR = ".progress"
Layout = Literal["folder", "flat"]


@dataclass(frozen=True)
class OutputPaths:
    """Where the files of one embedded image go."""

    latent: Path  # the latent file; written last, so its presence marks the image done
    target: Path  # the exact frame the loss saw
    reconstruction: Path  # G(w*)
    losses: Path  # losses.csv: step, total, perceptual, mse, elapsed_s
    video: Path  # progress.mp4 (with --video)
    checkpoint: Path  # resume state while the image is unfinished
    frames: Path  # folder of the video's frames while running
    mask: Path = Path("mask.png")  # the mask in the frame (masked embeddings only)
    run_metrics: Path = Path("metrics.csv")  # the run's metrics.csv (a row per image)
    # pivotal tuning (embed.pti): the tuned generator, its losses, its resume state; a shared
    # tuning's generator and resume state belong to the run's folder
    generator: Path = Path("generator.safetensors")
    pti_losses: Path = Path("pti_losses.csv")
    pti_checkpoint: Path = Path(PTI_CHECKPOINT_NAME)
    shared_generator: Path = Path(SHARED_GENERATOR_NAME)
    shared_checkpoint: Path = Path(PTI_CHECKPOINT_NAME)

    @classmethod
    def folder(cls, out_dir: Path) -> OutputPaths:
        """SPEC section 4: one folder per image."""
        out_dir = Path(out_dir)
        return cls(
            latent=out_dir / "latent.npz",
            target=out_dir / "target.png",
            reconstruction=out_dir / "reconstruction.png",
            losses=out_dir / "losses.csv",
            video=out_dir / "progress.mp4",
            checkpoint=out_dir / CHECKPOINT_NAME,
            frames=out_dir / PROGRESS_DIR,
            mask=out_dir / "mask.png",
            run_metrics=out_dir.parent / METRICS_NAME,
            generator=out_dir / "generator.safetensors",
            pti_losses=out_dir / "pti_losses.csv",
            pti_checkpoint=out_dir / PTI_CHECKPOINT_NAME,
            shared_generator=out_dir.parent / SHARED_GENERATOR_NAME,
            shared_checkpoint=out_dir.parent / PTI_CHECKPOINT_NAME,
        )

    @classmethod
    def flat(cls, folder: Path, name: str) -> OutputPaths:
        """Files named by the image beside each other (the web UI's run folders)."""
        folder = Path(folder)
        return cls(
            latent=folder / f"{name}.npz",
            target=folder / f"{name}_target.png",
            reconstruction=folder / f"{name}_reconstruction.png",
            losses=folder / f"{name}_losses.csv",
            video=folder / f"{name}_progress.mp4",
            checkpoint=folder / f".{name}{CHECKPOINT_NAME}",
            frames=folder / f".{name}{PROGRESS_DIR}",
            mask=folder / f"{name}_mask.png",
            run_metrics=folder / METRICS_NAME,
            generator=folder / f"{name}_generator.safetensors",
            pti_losses=folder / f"{name}_pti_losses.csv",
            pti_checkpoint=folder / f".{name}{PTI_CHECKPOINT_NAME}",
            shared_generator=folder / SHARED_GENERATOR_NAME,
            shared_checkpoint=folder / PTI_CHECKPOINT_NAME,
        )

    @classmethod
    def of(cls, layout: Layout, folder: Path, name: str) -> OutputPaths:
        return cls.folder(folder / name) if layout == "folder" else cls.flat(folder, name)


def run_record(
    generator: Mapping[str, Any],  # GeneratorInfo.record(...): generator, sha256, architecture
    *,
    preset: str,
    vgg: str,
    device: str,
) -> dict[str, Any]:
    """What every latent file of one run records besides its own image and result."""
    return {**generator, "preset": preset, "vgg": vgg, "device": str(device)}


def latent_metadata(
    record: Mapping[str, Any],  # run_record(...), plus any variant notes of an experiment
    config: EmbedConfig,  # the settings the image was embedded with
    result: EmbedResult,  # one image's result (batch of 1)
    w_avg: torch.Tensor,  # [w_dim] the w̄ the embedding started from / is measured to
    *,
    image: str,  # the input file's name
    image_sha256: str,
    fit: str,
    aligned: bool,
    init_file: str | None = None,  # the latent file it started from (config.init == "file")
    stopped_early: bool = False,  # the optimisation was stopped before config.steps
    metrics: Mapping[str, float] | None = None,  # extra measurements of the result
    masked: bool = False,  # embedded with a mask (Image2StyleGAN++ local embedding)
    pti: Mapping[str, Any] | None = None,  # pivotal tuning: the tuned generator that renders it
) -> dict[str, Any]:
    """The JSON metadata of a latent file (SPEC section 4)."""
    ws = result.ws  # [1, num_ws, w_dim]
    meta: dict[str, Any] = {
        **record,
        "precision": config.precision,
        "space": config.space,
        "init": init_file if config.init == "file" and init_file else config.init,
        "steps": int(result.history.shape[0]),  # W+ steps + noise-stage steps done
        "stopped_early": bool(stopped_early),
        "lr": config.lr,
        "loss": config.loss,
        "layers": list(config.layers),
        "layer_weights": list(config.layer_weights) if config.layer_weights else None,
        "mse_weight": config.mse_weight,
        "perceptual_size": config.perceptual_size,
        "noise": config.noise,
        "seed": config.seed,
        "config": config.to_dict(),
        "final_loss": {k: float(v.reshape(-1)[0]) for k, v in result.losses.items()},
        "w_dist_to_mean": float((ws[0] - w_avg.detach().cpu()).norm()),
        "image": image,
        "image_sha256": image_sha256,
        "fit": fit,
        "aligned": bool(aligned),
        "version": __version__,
        "elapsed_s": round(float(result.elapsed), 3),
    }
    if config.init == "file" and init_file:
        meta["init_file"] = init_file
    if config.noise_steps or config.noise_joint:  # Image2StyleGAN++ (Sec. 4.2)
        meta["noise_stage"] = {
            "schedule": "joint" if config.noise_joint else "sequential",
            "steps": config.noise_steps,
            "lr": config.noise_lr,
            "loss": config.noise_loss,
        }
    if result.noise:
        meta["noise_maps"] = len(result.noise)  # stored as noise_00 ... in the file
    if masked:
        meta["masked"] = True  # the loss saw the white pixels of mask.png only
    if metrics:
        meta["metrics"] = {k: float(v) for k, v in metrics.items()}
    if pti:
        meta["pti"] = dict(pti)  # edit.sources.recorded_generator renders with its generator
    return meta


def write_record(
    paths: OutputPaths,
    result: EmbedResult,  # one image's result (batch of 1)
    metadata: Mapping[str, Any],  # latent_metadata(...)
    clock: Sequence[tuple[int, float]] = (),  # (step, elapsed s) samples for losses.csv
    video: bool = False,  # turn the collected frames into progress.mp4
) -> Path:
    """Write reconstruction.png, losses.csv, progress.mp4 and last latent.npz (which marks the
    image done); then drop the resume checkpoint. Returns the latent file's path."""
    extras: dict[str, torch.Tensor] = {}
    if result.z is not None:
        extras["z"] = result.z
    if result.w_single is not None:
        extras["w_single"] = result.w_single
    extras.update(noise_arrays(result.noise))
    save_image(tensor_to_pil(result.images[0]), paths.reconstruction)
    write_losses_csv(paths.losses, result.history, clock)
    if video:
        _write_progress_video(paths)
    save_latent(paths.latent, result.ws, dict(metadata), **extras)
    paths.checkpoint.unlink(missing_ok=True)
    paths.pti_checkpoint.unlink(missing_ok=True)
    return paths.latent


def write_losses_csv(
    path: Path,
    history: torch.Tensor,  # [steps, 3] (total, perceptual, mse) of one image
    clock: Sequence[tuple[int, float]] = (),
) -> None:
    """losses.csv; elapsed is sampled at report points and interpolated linearly between."""
    write_step_csv(path, history, ("total", "perceptual", "mse"), clock)


def write_step_csv(
    path: Path,
    history: torch.Tensor,  # [steps, len(columns)] per-step values of one image
    columns: Sequence[str],
    clock: Sequence[tuple[int, float]] = (),  # (step, elapsed s) samples at report points
) -> None:
    """A per-step CSV: step, the columns, elapsed_s (interpolated linearly between the clock's
    samples), written atomically; losses.csv and pti_losses.csv."""
    rows = history.reshape(-1, len(columns)).numpy()
    steps = np.arange(1, rows.shape[0] + 1)
    samples = sorted(set(clock))
    if samples:
        cs, ct = zip(*samples, strict=True)
        elapsed = np.interp(steps, [0, *cs], [0.0, *ct])
    else:
        elapsed = np.zeros(steps.shape, dtype=float)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *columns, "elapsed_s"])
    for k in range(rows.shape[0]):
        writer.writerow([int(steps[k]), *(f"{v:.6g}" for v in rows[k]), f"{elapsed[k]:.3f}"])
    atomic_write_text(path, out.getvalue())


def _write_progress_video(paths: OutputPaths) -> None:
    frames = sorted(paths.frames.glob("frame_*.png"))
    if frames:
        from PIL import Image

        from ..video import open_frame_writer

        with open_frame_writer(paths.video, fps=10) as writer:
            for f in frames:
                with Image.open(f) as im:
                    writer.append(np.asarray(im.convert("RGB")))
    shutil.rmtree(paths.frames, ignore_errors=True)


def read_metrics_csv(path: Path) -> dict[str, dict[str, str]]:
    """A run's metrics.csv: image name -> its row ({} when there is none or it is unreadable)."""
    try:
        with open(path, newline="") as f:
            return {row["image"]: row for row in csv.DictReader(f) if row.get("image")}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on a hidden `.<name>.lock` beside `path` (torchrun ranks share one
    metrics.csv); a no-op without `fcntl`."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def update_metrics_csv(path: Path, name: str, metrics: Mapping[str, float]) -> None:
    """Set image `name`'s row of the run's metrics.csv (rewritten atomically under a lock, rows
    sorted by name)."""
    with _locked(path):
        _update_metrics_csv(path, name, metrics)


def _update_metrics_csv(path: Path, name: str, metrics: Mapping[str, float]) -> None:
    from ..metrics import METRIC_KEYS

    rows = read_metrics_csv(path)
    rows[name] = {"image": name, **{k: f"{float(v):.6g}" for k, v in metrics.items()}}
    keys = [k for k in (*METRIC_KEYS, "time_s") if any(k in r for r in rows.values())]
    keys += sorted({k for r in rows.values() for k in r} - {"image", *keys})
    out = io.StringIO()
    writer = csv.DictWriter(out, ["image", *keys], lineterminator="\n", restval="")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow({k: rows[key].get(k, "") for k in ["image", *keys]})
    atomic_write_text(path, out.getvalue())
