"""Embedding files on disk: batches, per-image output folders, resume, one failure at a time.

Layout per image (SPEC section 4): `OUT/<stem>/latent.npz`, `target.png` (the exact image the
loss saw), `reconstruction.png`, `losses.csv`, optional `progress.mp4`; while running, a hidden
`.checkpoint.pt` (written atomically every `checkpoint_every` steps) lets a re-run resume the
image where it stopped. Finished images (a `latent.npz` present) are skipped unless `overwrite`.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import __version__
from ..errors import I2SError
from ..fileio import atomic_path, atomic_write_text, sha256_file
from ..image import pil_to_tensor, save_image, tensor_to_pil
from ..latents import save_latent
from .embedder import Embedder, EmbedResult, EmbedState, StepReport
from .targets import target_frame

__all__ = ["EmbedJob", "JobOutcome", "embed_files", "plan_jobs"]

CHECKPOINT_NAME = ".checkpoint.pt"
PROGRESS_DIR = ".progress"


@dataclass
class EmbedJob:
    """One input image and where its results go."""

    source: Path
    out_dir: Path
    target: torch.Tensor | None = None  # [1, 3, H, W] in [-1, 1], set by `prepare`
    image_sha256: str = ""
    state: EmbedState | None = None  # resume point
    clock: list[tuple[int, float]] = field(default_factory=list)  # (step, elapsed s) samples

    @property
    def name(self) -> str:
        return self.out_dir.name


@dataclass
class JobOutcome:
    """What happened to one input (for the summary, `--json` and the exit code)."""

    source: str
    out_dir: str
    status: Literal["done", "skipped", "failed"]
    error: str | None = None
    losses: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    elapsed_s: float = 0.0


def plan_jobs(sources: Sequence[Path], out: Path) -> list[EmbedJob]:
    """One job per input; output folders named by the file stem, de-duplicated in input order
    (`photo`, `photo-2`, ...) so two inputs never share a folder."""
    seen: dict[str, int] = {}
    jobs = []
    for src in sources:
        stem = Path(src).stem or "image"
        count = seen.get(stem, 0) + 1
        seen[stem] = count
        name = stem if count == 1 else f"{stem}-{count}"
        jobs.append(EmbedJob(Path(src), out / name))
    return jobs


def embed_files(
    jobs: Sequence[EmbedJob],
    embedder: Embedder,
    *,
    metadata: dict[str, Any],  # generator name/sha256, vgg, preset, ...: stored in latent.npz
    batch_size: int = 1,
    align: bool = False,
    fit: str = "crop",
    content_size: tuple[int, int] | None = None,
    init: torch.Tensor | None = None,
    overwrite: bool = False,
    checkpoint_every: int = 250,
    report_every: int = 25,
    video: bool = False,
    video_every: int = 25,
    progress: bool = True,
    on_report: Callable[[list[EmbedJob], StepReport], None] | None = None,
    log: Callable[[str], None] = print,
) -> list[JobOutcome]:
    """Embed every job's image; returns one outcome per job (failed ones carry one-line errors).

    `on_report` sees each batch's reports (tests use it to simulate an interruption).
    """
    G = embedder.G
    outcomes: dict[int, JobOutcome] = {}
    pending: list[tuple[int, EmbedJob]] = []
    fingerprint = _fingerprint(embedder, metadata, fit, align, init)
    for i, job in enumerate(jobs):
        done = job.out_dir / "latent.npz"
        if done.exists() and not overwrite:
            outcomes[i] = JobOutcome(str(job.source), str(job.out_dir), "skipped")
            continue
        try:
            _prepare(job, G, align, fit, content_size)
            _load_checkpoint(job, fingerprint, overwrite)
        except I2SError as e:
            outcomes[i] = JobOutcome(str(job.source), str(job.out_dir), "failed", error=str(e))
            log(f"error: {e}")
            continue
        pending.append((i, job))

    # Images at the same step share a batch (Adam's step count is per batch).
    by_step: dict[int, list[tuple[int, EmbedJob]]] = {}
    for item in pending:
        by_step.setdefault(item[1].state.step if item[1].state else 0, []).append(item)
    batches = [
        group[k : k + batch_size]
        for _, group in sorted(by_step.items(), reverse=True)
        for k in range(0, len(group), batch_size)
    ]
    for b, batch in enumerate(batches, 1):
        label = f"batch {b}/{len(batches)}" if len(batches) > 1 else ""
        results = _run_batch(
            [job for _, job in batch],
            embedder,
            init=init,
            fingerprint=fingerprint,
            checkpoint_every=checkpoint_every,
            report_every=report_every,
            video=video,
            video_every=video_every,
            progress=progress,
            label=label,
            on_report=on_report,
        )
        for (i, job), result in zip(batch, results, strict=True):
            _write_outputs(job, result, embedder, metadata, fit, align, video)
            outcomes[i] = JobOutcome(
                str(job.source),
                str(job.out_dir),
                "done",
                losses={k: float(v) for k, v in result.losses.items()},
                steps=int(result.history.shape[0]),
                elapsed_s=float(result.elapsed),
            )
    return [outcomes[i] for i in range(len(jobs))]


def _prepare(job: EmbedJob, G, align: bool, fit: str, content_size: tuple[int, int] | None) -> None:
    """Decode (+ align) + fit to the generator frame; write target.png (what the loss sees)."""
    frame = target_frame(
        job.source,
        G.img_resolution,
        align=align,
        fit=fit,  # type: ignore[arg-type]
        content_size=content_size,
    )
    job.target = pil_to_tensor(frame)
    job.image_sha256 = sha256_file(job.source)
    save_image(frame, job.out_dir / "target.png")


def _fingerprint(embedder: Embedder, metadata: dict[str, Any], fit: str, align: bool, init) -> str:
    parts = [
        embedder.config.fingerprint(),
        str(metadata.get("generator_sha256") or metadata.get("generator", "")),
        str(metadata.get("vgg", "")),
        fit,
        str(align),
        str(embedder.content_box),
        "init" if init is None else f"init:{float(init.double().sum()):.9g}",
    ]
    return "|".join(parts)


def _load_checkpoint(job: EmbedJob, fingerprint: str, overwrite: bool) -> None:
    path = job.out_dir / CHECKPOINT_NAME
    if not path.exists():
        return
    if overwrite:
        path.unlink()
        shutil.rmtree(job.out_dir / PROGRESS_DIR, ignore_errors=True)
        return
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a checkpoint is only a cache: a damaged one restarts the image
        path.unlink(missing_ok=True)
        return
    if ckpt.get("fingerprint") != fingerprint or ckpt.get("image_sha256") != job.image_sha256:
        raise I2SError(
            f"{job.source}: {path} was made with other settings (or another image); "
            "re-run with the same options to resume, or pass --overwrite to start again"
        )
    job.state = EmbedState.from_dict(ckpt["state"])
    job.clock = [tuple(x) for x in ckpt.get("clock", [])]


def _save_checkpoint(job: EmbedJob, state: EmbedState, fingerprint: str) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "fingerprint": fingerprint,
            "image_sha256": job.image_sha256,
            "state": state.to_dict(),
            "clock": [list(c) for c in job.clock],
        },
        buf,
    )
    with atomic_path(job.out_dir / CHECKPOINT_NAME) as tmp:
        tmp.write_bytes(buf.getvalue())


def _run_batch(
    jobs: list[EmbedJob],
    embedder: Embedder,
    *,
    init: torch.Tensor | None,
    fingerprint: str,
    checkpoint_every: int,
    report_every: int,
    video: bool,
    video_every: int,
    progress: bool,
    label: str,
    on_report: Callable[[list[EmbedJob], StepReport], None] | None,
) -> list[EmbedResult]:
    targets = torch.cat([job.target for job in jobs])
    state = EmbedState.merge([job.state for job in jobs]) if jobs[0].state is not None else None
    steps = embedder.config.steps
    start = state.step if state is not None else 0
    # Reports (the only host syncs) land on every checkpoint and video frame; short runs report
    # more often so the progress bar moves (~100 updates per run at most).
    report_every = min(report_every, max(1, steps // 100))
    every = _report_interval(report_every, checkpoint_every, video_every if video else 0)
    bar = _progress_bar(progress, steps, start, label, [job.name for job in jobs])
    last: StepReport | None = None
    try:
        for report in embedder.iterate(targets, init=init, state=state, report_every=every):
            last = report
            for job in jobs:
                job.clock.append((report.step, report.elapsed))
            if bar is not None:
                losses = report.losses[:, 0].float().cpu()  # the one host sync per report
                bar.update(report.step - bar.n)
                bar.set_postfix_str(f"loss {losses.mean():.4g}")
            if video and report.images.numel() and report.step % video_every == 0:
                for job, img in zip(jobs, report.images, strict=True):
                    save_image(img, job.out_dir / PROGRESS_DIR / f"frame_{report.step:07d}.png")
            if report.step % checkpoint_every == 0 and report.step < steps:
                for job, s in zip(jobs, report.state().split(), strict=True):
                    _save_checkpoint(job, s, fingerprint)
            if on_report is not None:
                on_report(jobs, report)
    except KeyboardInterrupt:
        if last is not None and last.step > start:  # keep the work since the last checkpoint
            for job, s in zip(jobs, last.state().split(), strict=True):
                _save_checkpoint(job, s, fingerprint)
        raise
    finally:
        if bar is not None:
            bar.close()
    assert last is not None
    final_state = last.state()
    result = embedder.finish(targets, final_state)
    return [_select(result, i) for i in range(len(jobs))]


def _report_interval(*intervals: int) -> int:
    """The largest interval that divides every non-zero interval (reports land on each)."""
    g = 0
    for k in intervals:
        if k > 0:
            g = math.gcd(g, k)
    return max(g, 1)


def _progress_bar(enabled: bool, steps: int, start: int, label: str, names: list[str]):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    desc = f"{label} {shown}".strip()
    return tqdm(total=steps, initial=start, desc=desc, unit="step", dynamic_ncols=True, leave=True)


def _select(result: EmbedResult, i: int) -> EmbedResult:
    def row(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[i : i + 1]

    return EmbedResult(
        ws=result.ws[i : i + 1],
        images=result.images[i : i + 1],
        losses={k: v[i] for k, v in result.losses.items()},
        history=result.history[:, i],
        elapsed=result.elapsed,
        z=row(result.z),
        w_single=row(result.w_single),
        noise=[t[i : i + 1] for t in result.noise],
    )


def _write_outputs(
    job: EmbedJob,
    result: EmbedResult,
    embedder: Embedder,
    metadata: dict[str, Any],
    fit: str,
    align: bool,
    video: bool,
) -> None:
    cfg = embedder.config
    ws = result.ws  # [1, num_ws, w_dim]
    w_avg = embedder.w_avg.detach().cpu()
    meta = {
        **metadata,
        "space": cfg.space,
        "init": metadata.get("init_file", cfg.init),
        "steps": int(result.history.shape[0]),
        "lr": cfg.lr,
        "loss": cfg.loss,
        "layers": list(cfg.layers),
        "layer_weights": list(cfg.layer_weights) if cfg.layer_weights else None,
        "mse_weight": cfg.mse_weight,
        "perceptual_size": cfg.perceptual_size,
        "noise": cfg.noise,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "final_loss": {k: float(v) for k, v in result.losses.items()},
        "w_dist_to_mean": float((ws[0] - w_avg).norm()),
        "image": job.source.name,
        "image_sha256": job.image_sha256,
        "fit": fit,
        "aligned": align,
        "version": __version__,
        "elapsed_s": round(float(result.elapsed), 3),
    }
    extras: dict[str, Any] = {}
    if result.z is not None:
        extras["z"] = result.z
    if result.w_single is not None:
        extras["w_single"] = result.w_single
    save_image(tensor_to_pil(result.images[0]), job.out_dir / "reconstruction.png")
    _write_losses_csv(job, result)
    if video:
        _write_progress_video(job)
    save_latent(job.out_dir / "latent.npz", ws, meta, **extras)  # last: marks the image done
    (job.out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)


def _write_losses_csv(job: EmbedJob, result: EmbedResult) -> None:
    history = result.history.numpy()  # [steps, 3]
    steps = np.arange(1, history.shape[0] + 1)
    clock = sorted(set(job.clock))
    if clock:  # elapsed is sampled at report points; rows between are interpolated linearly
        cs, ct = zip(*clock, strict=True)
        elapsed = np.interp(steps, [0, *cs], [0.0, *ct])
    else:
        elapsed = np.zeros_like(steps, dtype=float)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "total", "perceptual", "mse", "elapsed_s"])
    for k in range(history.shape[0]):
        total, perc, mse = history[k]
        writer.writerow(
            [int(steps[k]), f"{total:.6g}", f"{perc:.6g}", f"{mse:.6g}", f"{elapsed[k]:.3f}"]
        )
    atomic_write_text(job.out_dir / "losses.csv", out.getvalue())


def _write_progress_video(job: EmbedJob) -> None:
    frames_dir = job.out_dir / PROGRESS_DIR
    frames = sorted(frames_dir.glob("frame_*.png"))
    if frames:
        from PIL import Image

        from ..video import open_frame_writer

        with open_frame_writer(job.out_dir / "progress.mp4", fps=10) as writer:
            for f in frames:
                with Image.open(f) as im:
                    writer.append(np.asarray(im.convert("RGB")))
    shutil.rmtree(frames_dir, ignore_errors=True)
