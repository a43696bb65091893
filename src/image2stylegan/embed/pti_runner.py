"""Pivotal tuning inside the embed loop: a batch's tuning runs, their progress, resume and files.

`tune_batch` tunes one generator copy per image of a finished batch (in lockstep, so a batch
has one progress bar and one step count), `tune_shared` one copy for the images of every batch
of the run (`pti_shared`). Both yield the runner's `BatchProgress` events (phase "pti"), save
each run's resume state every `checkpoint_every` steps and when the loop is left early (Ctrl+C),
and return what `_write` records: the tuned render as the result, and a `TunedImage` per image
(its generator, the PTI losses, the pre-tuning result whose metrics are kept as `latent_*`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_path, sha256_file
from ..models.base import Generator as StyleGenerator
from .embedder import EmbedResult, StepReport
from .pti import PTI_TERMS, PivotalTuner, PTIState, TuningRun, final_terms
from .records import write_step_csv

__all__ = [
    "TunedImage",
    "pti_metadata",
    "save_tuned_generator",
    "tune_batch",
    "tune_shared",
    "write_pti_losses_csv",
]

logger = logging.getLogger(__name__)


@dataclass
class TunedImage:
    """One image's share of a tuning run, for its record."""

    generator: StyleGenerator  # the tuned generator (CPU, frozen)
    history: torch.Tensor  # [steps, 4] PTI_TERMS of its run
    before: EmbedResult  # the pivot's result before tuning (batch of 1)
    elapsed: float  # seconds of the run
    clock: list[tuple[int, float]] = field(default_factory=list)  # (pti step, elapsed s)
    file: Path | None = None  # the shared generator, already written (None: write it per image)
    sha256: str | None = None  # of `file`
    images: int = 1  # images the generator was tuned on


def _load_state(path: Path, fingerprint: str) -> PTIState | None:
    """A run's resume state if `path` holds one for this fingerprint, else None."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") != fingerprint:
            return None
        return PTIState.from_dict(saved["state"])
    except Exception:  # a checkpoint is only a cache: a damaged one restarts the tuning
        logger.warning("%s: unreadable pivotal-tuning checkpoint; tuning from the start", path)
        return None


def _save_state(path: Path, state: PTIState, fingerprint: str) -> None:
    buf = io.BytesIO()
    torch.save({"fingerprint": fingerprint, "state": state.to_dict()}, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _drive(
    runs: Sequence[TuningRun],
    checkpoints: Sequence[Path],  # one per run
    fingerprints: Sequence[str],
    progress: Callable[[StepReport], Any],  # wraps a report into the runner's event
    report_every: int,
    checkpoint_every: int,
    stop: Callable[[], bool] | None,
    rows_of: Sequence[Sequence[int]],  # the images (rows of the batch) each run holds
    n_images: int,
    clocks: list[list[tuple[int, float]]],  # per run, appended to
) -> Generator[Any, None, bool]:
    """Step every run to `pti_steps` in lockstep, yielding progress; returns stopped early."""
    tuner = runs[0].tuner
    steps = tuner.steps
    latent_steps = tuner.config.latent_steps
    start = min(r.step_count for r in runs)
    last = torch.zeros(n_images, 3, device=tuner.device)

    def save_all() -> None:
        for run, path, fp in zip(runs, checkpoints, fingerprints, strict=True):
            try:  # a cache: a full disk costs the resume point, not the run
                _save_state(path, run.state(), fp)
            except OSError as e:
                logger.warning("%s: cannot write its resume checkpoint (%s)", path, e.strerror or e)

    stopped = False
    try:
        for k in range(start, steps):
            for run, rows in zip(runs, rows_of, strict=True):
                if run.step_count < steps:
                    terms = run.step()
                    last[list(rows)] = terms[:3]
            done = k + 1
            if done % report_every == 0 or done == steps:
                for run, clock in zip(runs, clocks, strict=True):
                    clock.append((run.step_count, run.elapsed))
                if done % checkpoint_every == 0 and done < steps:
                    save_all()
                yield progress(
                    StepReport(
                        step=latent_steps + done,
                        steps=tuner.config.total_steps,
                        losses=last.clone(),
                        images=torch.empty(0),
                        ws=torch.empty(0),
                        elapsed=max(r.elapsed for r in runs),
                        state=_no_state,
                        phase="pti",
                    )
                )
                if stop is not None and done < steps and stop():
                    stopped = True
                    break
    except (KeyboardInterrupt, GeneratorExit):
        if any(r.step_count > 0 for r in runs):
            save_all()
        raise
    return stopped


def _no_state() -> Any:
    raise RuntimeError("a pivotal-tuning report has no latent state (the latent is the pivot)")


def tune_batch(
    jobs: Sequence[Any],  # the runner's EmbedJobs of the batch
    targets: torch.Tensor,  # [N, C, H, W]
    masks: torch.Tensor | None,  # [N, 1, H, W]
    result: EmbedResult,  # the batch's latent result: the pivots
    tuner: PivotalTuner,
    fingerprints: Sequence[str],  # each job's resume fingerprint
    progress: Callable[[StepReport], Any],
    report_every: int,
    checkpoint_every: int,
    stop: Callable[[], bool] | None,
) -> Generator[Any, None, tuple[EmbedResult, list[TunedImage], bool]]:
    """Tune one generator per image of a finished batch; returns (tuned result, per-image
    tunings, stopped early)."""
    runs = []
    for i, (job, fp) in enumerate(zip(jobs, fingerprints, strict=True)):
        state = _load_state(job.paths.pti_checkpoint, fp)
        runs.append(
            TuningRun(
                tuner,
                result.ws[i : i + 1],
                targets[i : i + 1],
                [t[i : i + 1] for t in result.noise],
                None if masks is None else masks[i : i + 1],
                state=state,
                seed=tuner.config.seed,
            )
        )
    clocks: list[list[tuple[int, float]]] = [[] for _ in runs]
    stopped = yield from _drive(
        runs, [j.paths.pti_checkpoint for j in jobs], fingerprints, progress, report_every,
        checkpoint_every, stop, [[i] for i in range(len(runs))], len(runs), clocks,
    )  # fmt: skip
    images = torch.cat([run.render() for run in runs])
    tuned = [
        TunedImage(
            run.tuned_generator(), run.full_history(), _row(result, i), run.elapsed, clocks[i]
        )
        for i, run in enumerate(runs)
    ]
    return replace(result, images=images), tuned, stopped


def tune_shared(
    jobs: Sequence[Any],  # every job of the run whose latent stage finished
    targets: torch.Tensor,  # [M, C, H, W]
    masks: torch.Tensor | None,
    result: EmbedResult,  # the latent results of all of them, concatenated
    tuner: PivotalTuner,
    checkpoint: Path,  # the run's shared resume checkpoint
    generator_file: Path,  # where the shared generator goes
    fingerprint: str,
    progress: Callable[[StepReport], Any],
    report_every: int,
    checkpoint_every: int,
    stop: Callable[[], bool] | None,
    source: Mapping[str, Any],  # what the tuned file's header records (save_tuned_generator)
) -> Generator[Any, None, tuple[EmbedResult, list[TunedImage], bool]]:
    """Tune one generator on every image (the paper's multi-image PTI) and write it."""
    run = TuningRun(
        tuner, result.ws, targets, result.noise, masks,
        state=_load_state(checkpoint, fingerprint), seed=tuner.config.seed,
    )  # fmt: skip
    clocks: list[list[tuple[int, float]]] = [[]]
    stopped = yield from _drive(
        [run], [checkpoint], [fingerprint], progress, report_every, checkpoint_every, stop,
        [list(range(len(jobs)))], len(jobs), clocks,
    )  # fmt: skip
    G = run.tuned_generator()
    names = [job.name for job in jobs]
    save_tuned_generator(G, generator_file, {**source, "images": names})
    sha = sha256_file(generator_file)
    checkpoint.unlink(missing_ok=True)
    history = run.full_history()
    tuned = [
        TunedImage(
            G, history, _row(result, i), run.elapsed, clocks[0], generator_file, sha, len(jobs)
        )
        for i in range(len(jobs))
    ]
    return replace(result, images=run.render()), tuned, stopped


def _row(result: EmbedResult, i: int) -> EmbedResult:
    from .runner import select

    return select(result, i)


def save_tuned_generator(G: StyleGenerator, path: Path, source: Mapping[str, Any]) -> Path:
    """Write a tuned generator in the native format (atomically); its header's source record
    says what it was tuned from and how (`source`)."""
    from ..checkpoints.native import save_native

    return save_native(G, path, source=json.dumps(dict(source), sort_keys=True, default=str))


def pti_metadata(
    tuner: PivotalTuner,
    tuned: TunedImage,
    generator_file: Path,  # where the tuned generator is
    latent_file: Path,  # the latent file that will record it
    sha256: str,
    metrics_before: Mapping[str, float],
) -> dict[str, Any]:
    """The "pti" block of a latent file: which tuned generator renders it (a path relative to
    the latent file, and its sha256), the settings, the final losses, the metrics before."""
    rel = os.path.relpath(generator_file, latent_file.parent)
    return {
        **tuner.record(),
        "generator": Path(rel).as_posix(),
        "generator_sha256": sha256,
        "images": tuned.images,
        "steps_done": int(tuned.history.shape[0]),
        "final_loss": final_terms(tuned.history),
        "elapsed_s": round(float(tuned.elapsed), 3),
        "metrics_before": {k: float(v) for k, v in metrics_before.items()},
    }


def write_pti_losses_csv(
    path: Path,
    history: torch.Tensor,  # [steps, 4] PTI_TERMS
    clock: Sequence[tuple[int, float]] = (),  # (pti step, elapsed s) samples
) -> None:
    """pti_losses.csv: step, total, pivot, mse, locality, elapsed_s (elapsed interpolated between
    report points). `pivot` is the pivot loss (LPIPS + L2, or Eq. 1), `mse` its pixel MSE term
    (0-255 scale), `locality` the regulariser L_R before its weight."""
    write_step_csv(path, history, PTI_TERMS, clock)


def shared_fingerprint(fingerprints: Sequence[str]) -> str:
    """One fingerprint for a shared tuning of these jobs (order-independent)."""
    return hashlib.sha256("\n".join(sorted(fingerprints)).encode()).hexdigest()[:16]
