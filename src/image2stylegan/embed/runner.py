"""The one embed loop over files: batches, per-image records, resume, one failure at a time.

`iter_embed_files` is what the CLI (`embed`, `experiment`), the web UI and every experiment run:
it prepares each job's target (`targets.prepare_target`), groups the jobs into batches, drives
`Embedder.iterate`, and writes each image's record (`records.write_record`). It yields events as
it goes: `BatchProgress` at every report point (front ends draw progress from them),
`BatchDone` with a finished batch's results, and one `JobOutcome` per job. `embed_files` runs it
to the end and returns the outcomes in job order.

Resume: every `checkpoint_every` steps, and whenever the loop is left early (Ctrl+C, or the
consumer closing the iterator), each unfinished image's state goes to its hidden checkpoint, so a
re-run continues exactly. Finished images (a latent file present) are skipped unless `overwrite`;
one whose input file changed since (another sha256 than its record names) fails with a message
saying so (`--overwrite` embeds it again) instead of keeping the stale result silently.
A `stop` callable ends the run early instead: the batch in progress is finished from the state
reached and recorded with `stopped_early`; later batches are not started.

Outputs: `plan_jobs` names the folders (`folders.plan_names`: safe, unique, stable across
reruns); every job's folder is checked before anything is written into it (a real folder inside
the run's output folder, `folders.check_output_folder`). A job whose folder cannot be written
fails alone with one line; the others are done.

Extension points for later stages: `stages` refine a finished batch's result before it is
recorded (e.g. further optimisation), `metrics` add measurements to every record (the pipeline
adds the reconstruction metrics of `embed.evaluation`); each finished image's metrics also go to
the run's `metrics.csv` (one row per image).

Masks (Image2StyleGAN++ local embedding): a job's `mask_source` (or the run's `options.mask`) is
transformed like its image and written beside target.png as mask.png; the loss of every step and
the metrics see only its white pixels (`embed.masks`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import shutil
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from PIL import Image

from ..align import AlignDependencyError
from ..devices import is_out_of_memory
from ..errors import I2SError, ImageError, LatentError
from ..fileio import atomic_path, sha256_file
from ..image import pil_to_tensor, save_image
from ..latents import load_latent
from .embedder import Embedder, EmbedResult, EmbedState, StepReport
from .folders import check_output_folder, plan_names
from .options import RunOptions
from .pti import PivotalTuner
from .pti_runner import (
    TunedImage,
    pti_metadata,
    save_tuned_generator,
    shared_fingerprint,
    tune_batch,
    tune_shared,
    write_pti_losses_csv,
)
from .records import (
    CHECKPOINT_NAME,
    Layout,
    OutputPaths,
    latent_metadata,
    update_metrics_csv,
    write_record,
)
from .targets import prepare_target

__all__ = [
    "CHECKPOINT_NAME",
    "BatchDone",
    "BatchProgress",
    "EmbedEvent",
    "EmbedJob",
    "JobOutcome",
    "Metric",
    "Stage",
    "embed_files",
    "iter_embed_files",
    "plan_jobs",
    "select",
]

logger = logging.getLogger(__name__)

Status = Literal["done", "skipped", "failed", "stopped"]


@dataclass
class EmbedJob:
    """One input image and where its record goes."""

    source: Path  # the input file (named and hashed in the record)
    paths: OutputPaths  # where its files go
    name: str = ""  # for messages and progress (default: the latent file's folder or stem)
    align: bool | None = None  # FFHQ-align this image; None = the run's option
    root: Path | None = None  # the run's output folder, which every file must stay inside
    frame: Image.Image | None = None  # an already prepared frame of the source (skips decoding)
    mask_source: Path | Image.Image | None = None  # its mask (white = embed, the source's
    # size): a file or an L image; None = the run's mask
    mask_frame: Image.Image | None = None  # a mask already in frame coordinates (with `frame`)
    fingerprint: str = ""  # what else its result depends on (e.g. a second target's sha256)
    mask_in_loss: bool = True  # False: the mask only selects what the metrics measure (the
    # loss is a custom one that masks itself, embed.applications)
    # --- filled in by the runner -----------------------------------------------------------
    target: torch.Tensor | None = None  # [1, 3, H, W] in [-1, 1]
    aligned: bool = False  # whether the target was FFHQ-aligned
    image_sha256: str = ""
    mask: torch.Tensor | None = None  # [1, 1, H, W] in [0, 1], the mask in the frame
    mask_sha256: str = ""  # of the frame mask's bytes (resume safety)
    state: EmbedState | None = None  # resume point
    clock: list[tuple[int, float]] = field(default_factory=list)  # (step, elapsed s) samples
    notes: list[str] = field(default_factory=list)  # warnings while preparing (e.g. two faces)

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        if not self.name:
            latent = self.paths.latent
            self.name = latent.parent.name if latent.name == "latent.npz" else latent.stem

    @property
    def out_dir(self) -> Path:
        return self.paths.latent.parent


@dataclass
class JobOutcome:
    """What happened to one input (for the summary, `--json` and the exit code)."""

    source: str
    out_dir: str
    status: Status
    error: str | None = None
    losses: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    elapsed_s: float = 0.0
    latent: str | None = None  # its latent file (status "done" or "skipped")
    tuned_generator: str | None = None  # its pivotally tuned generator (embed --pti-steps)
    warnings: list[str] = field(default_factory=list)
    job: EmbedJob | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, job: EmbedJob, status: Status, **kw: Any) -> JobOutcome:
        return cls(
            str(job.source), str(job.out_dir), status, warnings=list(job.notes), job=job, **kw
        )

    def to_json(self) -> dict[str, Any]:
        """The outcome as `--json` prints it."""
        return {k: v for k, v in vars(self).items() if k != "job"}


@dataclass(frozen=True)
class BatchProgress:
    """A report point of the batch being optimised."""

    jobs: list[EmbedJob]
    report: StepReport
    batch: int  # 1-based index of the batch
    batches: int  # number of batches in this run
    start: int  # the step the batch (re)started from


@dataclass(frozen=True)
class BatchDone:
    """A finished (or stopped) batch, before its records are written."""

    jobs: list[EmbedJob]
    result: EmbedResult  # batched: row i belongs to jobs[i]
    batch: int
    batches: int
    stopped: bool  # ended early by `stop`


EmbedEvent = BatchProgress | BatchDone | JobOutcome


class Stage(Protocol):
    """A step after the latent optimisation: takes a finished batch, returns its refined result."""

    def __call__(
        self, embedder: Embedder, targets: torch.Tensor, result: EmbedResult
    ) -> EmbedResult: ...


class Metric(Protocol):
    """Measurements of one finished image (`result` has batch 1), recorded under "metrics".

    `target` [1, 3, H, W] is the frame the loss saw, `mask` [1, 1, H, W] its mask (None: all
    pixels were embedded)."""

    def __call__(
        self, result: EmbedResult, target: torch.Tensor, mask: torch.Tensor | None
    ) -> Mapping[str, float]: ...


def plan_jobs(sources: Sequence[Path], out: Path, layout: Layout = "folder") -> list[EmbedJob]:
    """One job per input, named by its file stem made safe; inputs sharing a stem are named by
    stem and extension (`x-jpg`, `x-png`), then by a hash of their path (`folders.plan_names`),
    so two inputs never share a record and a rerun finds each image's folder again."""
    out = Path(out)
    names = plan_names(sources, out, layout)
    return [
        EmbedJob(Path(src), OutputPaths.of(layout, out, name), name=name, root=out)
        for src, name in zip(sources, names, strict=True)
    ]


def embed_files(
    jobs: Sequence[EmbedJob],
    embedder: Embedder,
    options: RunOptions | None = None,  # batch size, align, fit, checkpoints, video, ...
    *,
    record: Mapping[str, Any],  # run_record(...): generator, vgg, preset, device
    init: torch.Tensor | None = None,  # start codes for config.init == "file"
    on_report: Callable[[BatchProgress], None] | None = None,  # progress bars, tests
    stop: Callable[[], bool] | None = None,
    stages: Sequence[Stage] = (),
    metrics: Sequence[Metric] = (),
    tuner: PivotalTuner | None = None,  # pivotal tuning after the latent stages (embed.pti)
) -> list[JobOutcome]:
    """Embed every job's image; one outcome per job, in order (failed ones carry their error)."""
    events = iter_embed_files(
        jobs, embedder, options, record=record, init=init, stop=stop, stages=stages,
        metrics=metrics, tuner=tuner,
    )  # fmt: skip
    outcomes: dict[int, JobOutcome] = {}
    try:
        for event in events:
            if isinstance(event, BatchProgress) and on_report is not None:
                on_report(event)
            elif isinstance(event, JobOutcome):
                outcomes[id(event.job)] = event
    finally:
        events.close()  # an exception in on_report still saves the checkpoints
    return [outcomes[id(job)] for job in jobs]


def iter_embed_files(
    jobs: Sequence[EmbedJob],
    embedder: Embedder,
    options: RunOptions | None = None,
    *,
    record: Mapping[str, Any],
    init: torch.Tensor | None = None,
    stop: Callable[[], bool] | None = None,
    stages: Sequence[Stage] = (),
    metrics: Sequence[Metric] = (),
    tuner: PivotalTuner | None = None,
) -> Generator[EmbedEvent, None, None]:
    """The embed loop as a stream of events (see the module docstring)."""
    options = options or RunOptions()  # only its run fields are read; the config is the embedder's
    if init is not None and embedder.config.init != "file":
        init = None  # the config starts from w̄ / random: a start code does not apply
    G = embedder.G
    base = _fingerprint(embedder, record, options, init)
    pending: list[EmbedJob] = []
    for job in jobs:
        finished = None if options.overwrite else _finished(job)
        if finished is not None:
            if finished.error:
                logger.error("%s", finished.error)
            yield finished
            continue
        try:
            _prepare(job, G.img_resolution, options)
            _load_checkpoint(job, _job_fingerprint(base, job), options.overwrite)
        except AlignDependencyError:
            raise  # no image can be aligned: one message for the run, not one per image
        except I2SError as e:
            logger.error("%s", e)
            yield JobOutcome.of(job, "failed", error=str(e))
            continue
        except OSError as e:  # the folder or a file in it cannot be written
            error = f"{job.out_dir}: cannot write ({e.strerror or e})"
            logger.error("%s", error)
            yield JobOutcome.of(job, "failed", error=error)
            continue
        except (MemoryError, RuntimeError) as e:  # e.g. a huge image on a small machine
            if not is_out_of_memory(e):
                raise
            error = f"{job.source}: out of memory while preparing the image"
            logger.error("%s", error)
            yield JobOutcome.of(job, "failed", error=error)
            continue
        except ValueError as e:  # an image the preparation cannot use: it fails alone
            error = f"{job.source}: {e}"
            logger.error("%s", error)
            yield JobOutcome.of(job, "failed", error=error)
            continue
        for note in job.notes:
            logger.warning("%s", note)
        pending.append(job)

    # Images at the same step share a batch (Adam's step count is per batch).
    by_step: dict[int, list[EmbedJob]] = {}
    for job in pending:
        by_step.setdefault(job.state.step if job.state else 0, []).append(job)
    size = options.batch_size
    batches = [
        group[k : k + size]
        for _, group in sorted(by_step.items(), reverse=True)
        for k in range(0, len(group), size)
    ]
    shared = tuner is not None and tuner.config.pti_shared
    if shared and pending:
        _check_shared_generator(pending[0], options)
    deferred: list[_Embedded] = []  # a shared tuning's batches, recorded once it is done
    for b, batch in enumerate(batches, 1):
        if stop is not None and stop():
            for job in (j for later in batches[b - 1 :] for j in later):
                yield JobOutcome.of(job, "stopped")
            break
        targets = torch.cat([_target(job) for job in batch])
        masks = _masks(batch, targets)
        tuned: list[TunedImage] | None = None
        try:
            result, stopped = yield from _run_batch(
                batch, targets, embedder, options, init, base, b, len(batches), stop, masks,
                keep_final=tuner is not None,
            )  # fmt: skip
            for stage in stages:
                result = stage(embedder, targets, result)
            if tuner is not None and not shared and not stopped:
                result, tuned, stopped = yield from tune_batch(
                    batch, targets, masks, result, tuner,
                    [_job_fingerprint(base, job) for job in batch],
                    _progress_of(batch, b, len(batches), tuner.config.latent_steps),
                    _pti_report_every(tuner, options), options.checkpoint_every, stop,
                )  # fmt: skip
        except (MemoryError, RuntimeError) as e:  # this batch fails; smaller ones may fit
            if not is_out_of_memory(e):
                raise
            for job in batch:
                error = (
                    f"{job.source}: out of memory embedding {len(batch)} image(s) together "
                    f"on {embedder.device}; use a smaller --batch-size or --perceptual-size"
                )
                logger.error("%s", error)
                yield JobOutcome.of(job, "failed", error=error)
            continue
        yield BatchDone(batch, result, b, len(batches), stopped)
        if shared and not stopped:
            deferred.append(_Embedded(batch, targets, masks, result))
            continue
        for i, job in enumerate(batch):
            yield _write(job, select(result, i), targets[i : i + 1], embedder, options, record,
                         stopped, metrics, len(batch), tuner,
                         tuned[i] if tuned else None)  # fmt: skip
        if stopped:
            for job in (j for later in batches[b:] for j in later):
                yield JobOutcome.of(job, "stopped")
            break
    if deferred:
        assert tuner is not None
        yield from _tune_and_write_shared(
            deferred, embedder, options, record, base, metrics, tuner, stop
        )


@dataclass
class _Embedded:
    """A batch whose latent stages are done, waiting for a shared tuning."""

    jobs: list[EmbedJob]
    targets: torch.Tensor
    masks: torch.Tensor | None
    result: EmbedResult


def _progress_of(
    jobs: list[EmbedJob], batch: int, batches: int, start: int
) -> Callable[[StepReport], BatchProgress]:
    def wrap(report: StepReport) -> BatchProgress:
        for job in jobs:
            job.clock.append((report.step, report.elapsed))
        return BatchProgress(jobs, report, batch, batches, start)

    return wrap


def _pti_report_every(tuner: PivotalTuner, options: RunOptions) -> int:
    every = min(options.report_every, max(1, tuner.steps // 100))
    return _report_interval(every, options.checkpoint_every)


def _check_shared_generator(job: EmbedJob, options: RunOptions) -> None:
    """A shared tuning writes the run folder's generator: never over another run's."""
    path = job.paths.shared_generator
    if options.overwrite:
        job.paths.shared_checkpoint.unlink(missing_ok=True)
    elif path.exists() or path.is_symlink():
        raise I2SError(
            f"{path} exists (the shared tuned generator of an earlier run, which its latent "
            "files render with); pass --overwrite to tune a new one, or use another --out"
        )


def _tune_and_write_shared(
    deferred: Sequence[_Embedded],
    embedder: Embedder,
    options: RunOptions,
    record: Mapping[str, Any],
    base: str,
    metrics: Sequence[Metric],
    tuner: PivotalTuner,
    stop: Callable[[], bool] | None,
) -> Generator[EmbedEvent, None, None]:
    """One generator tuned on every image of the run (pti_shared), then every record."""
    jobs = [job for d in deferred for job in d.jobs]
    targets = torch.cat([d.targets for d in deferred])
    masks = None
    if any(d.masks is not None for d in deferred):
        masks = torch.cat(
            [d.masks if d.masks is not None else torch.ones_like(d.targets[:, :1])
             for d in deferred]
        )  # fmt: skip
    result = _concat_results([d.result for d in deferred])
    fingerprint = shared_fingerprint([_job_fingerprint(base, job) for job in jobs])
    try:
        tuned_result, tuned, stopped = yield from tune_shared(
            jobs, targets, masks, result, tuner, jobs[0].paths.shared_checkpoint,
            jobs[0].paths.shared_generator, fingerprint,
            _progress_of(jobs, 1, 1, tuner.config.latent_steps),
            _pti_report_every(tuner, options), options.checkpoint_every, stop,
            _tuned_source(record, tuner),
        )  # fmt: skip
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        for job in jobs:
            error = (
                f"{job.source}: out of memory tuning one generator on {len(jobs)} images "
                f"on {embedder.device}; use a smaller --batch-size"
            )
            logger.error("%s", error)
            yield JobOutcome.of(job, "failed", error=error)
        return
    except OSError as e:  # the shared generator cannot be written: every image fails
        for job in jobs:
            error = f"{job.paths.shared_generator}: cannot write ({e.strerror or e})"
            logger.error("%s", error)
            yield JobOutcome.of(job, "failed", error=error)
        return
    for i, job in enumerate(jobs):
        yield _write(job, select(tuned_result, i), targets[i : i + 1], embedder, options,
                     record, stopped, metrics, len(jobs), tuner, tuned[i])  # fmt: skip


def _concat_results(results: Sequence[EmbedResult]) -> EmbedResult:
    """The results of several batches as one (same steps: histories concatenate by image)."""
    if len(results) == 1:
        return results[0]

    def cat(ts: list[torch.Tensor | None]) -> torch.Tensor | None:
        return None if any(t is None for t in ts) else torch.cat(ts)  # type: ignore[arg-type]

    return EmbedResult(
        ws=torch.cat([r.ws for r in results]),
        images=torch.cat([r.images for r in results]),
        losses={k: torch.cat([r.losses[k] for r in results]) for k in results[0].losses},
        history=torch.cat([r.history for r in results], dim=1),
        elapsed=sum(r.elapsed for r in results),
        z=cat([r.z for r in results]),
        w_single=cat([r.w_single for r in results]),
        noise=[torch.cat(ts) for ts in zip(*(r.noise for r in results), strict=True)],
    )


def _tuned_source(record: Mapping[str, Any], tuner: PivotalTuner) -> dict[str, Any]:
    """What a tuned generator file's header records: the generator it was tuned from (name and
    sha256, never a path) and the settings."""
    name = str(record.get("generator", ""))
    if Path(name).is_file():
        name = Path(name).name
    return {
        "tuned_from": {"generator": name, "sha256": record.get("generator_sha256")},
        "pti": tuner.record(),
    }


def _finished(job: EmbedJob) -> JobOutcome | None:
    """The outcome of a job whose latent file exists: skipped, or failed when that record is
    unreadable, another image's, or older than the input file; None: not finished."""
    latent = job.paths.latent
    if not latent.exists() and not latent.is_symlink():
        return None
    try:
        meta = load_latent(latent).metadata
    except LatentError as e:
        return JobOutcome.of(job, "failed", error=f"{e}; pass --overwrite to embed it again")
    recorded, name = meta.get("image_sha256"), meta.get("image")
    try:
        current = sha256_file(job.source) if recorded else None
    except OSError:
        return None  # an unreadable input: preparing it says why, as for any input
    if isinstance(name, str) and name != job.source.name:
        error = (
            f"{job.source}: {latent} holds the embedding of another image ({name}); "
            "pass --overwrite to replace it"
        )
        return JobOutcome.of(job, "failed", error=error)
    if current is not None and current != recorded:
        error = (
            f"{job.source}: the file changed since {latent} was made from it (its sha256 "
            "differs); the result there is stale: pass --overwrite to embed it again"
        )
        return JobOutcome.of(job, "failed", error=error)
    return JobOutcome.of(job, "skipped", latent=str(latent))


def _masks(batch: Sequence[EmbedJob], targets: torch.Tensor) -> torch.Tensor | None:
    """[N, 1, H, W] masks of a batch (ones for unmasked jobs), or None when none has one."""
    masks = [job.mask if job.mask_in_loss else None for job in batch]
    if all(m is None for m in masks):
        return None
    ones = torch.ones_like(targets[:1, :1])
    return torch.cat([ones if m is None else m for m in masks])


def _target(job: EmbedJob) -> torch.Tensor:
    if job.target is None:
        raise RuntimeError(f"{job.source}: not prepared")
    return job.target


def _prepare(job: EmbedJob, resolution: int, options: RunOptions) -> None:
    """Decode (+ align) + fit to the generator frame; write target.png (what the loss sees)."""
    align = bool(options.align) if job.align is None else job.align
    mask_source = job.mask_source if job.mask_source is not None else options.mask
    frame_mask = None
    if job.frame is not None:
        frame = job.frame.convert("RGB")
        if frame.size != (resolution, resolution):
            raise I2SError(
                f"{job.source}: prepared frame is {frame.width}x{frame.height}, the generator "
                f"draws {resolution}x{resolution}"
            )
        job.aligned = align
        if job.mask_frame is not None:
            frame_mask = job.mask_frame.convert("L")
            if frame_mask.size != frame.size:
                raise I2SError(f"{job.source}: its mask frame is not {resolution}x{resolution}")
    else:
        with warnings.catch_warnings(record=True) as caught:  # alignment's (two faces, ...)
            warnings.simplefilter("always")
            target = prepare_target(
                job.source,
                resolution,
                align=align,
                fit=options.fit,
                content_size=options.content_size,
                name=str(job.source),
                mask=mask_source,
            )
        job.notes += [f"{job.source.name}: {w.message}" for w in caught]
        frame, job.aligned, frame_mask = target.frame, target.aligned, target.mask
    job.target = pil_to_tensor(frame)
    job.image_sha256 = sha256_file(job.source)
    check_output_folder(job.out_dir, job.root, hidden=[job.paths.frames])  # nothing written yet
    if frame_mask is not None:
        from .masks import mask_to_tensor

        job.mask = mask_to_tensor(frame_mask)
        if float(job.mask.max()) == 0:
            what = mask_source if isinstance(mask_source, Path) else f"{job.source}'s mask"
            raise ImageError(
                f"{what}: no pixel of the mask is left in the generator's frame (after "
                "alignment and fit); nothing to embed"
            )
        job.mask_sha256 = hashlib.sha256(frame_mask.tobytes()).hexdigest()
        save_image(frame_mask, job.paths.mask)
    else:
        job.paths.mask.unlink(missing_ok=True)  # from an earlier masked run of this output
    save_image(frame, job.paths.target)


def _fingerprint(
    embedder: Embedder, record: Mapping[str, Any], options: RunOptions, init: torch.Tensor | None
) -> str:
    """Everything besides the image that a resumed optimisation must share with the first run."""
    parts = [
        embedder.config.fingerprint(),
        str(record.get("generator_sha256") or record.get("generator", "")),
        str(record.get("vgg", "")),
        options.fit,
        str(embedder.content_box),
        "init" if init is None else f"init:{float(init.double().sum()):.9g}",
    ]
    return "|".join(parts)


def _job_fingerprint(base: str, job: EmbedJob) -> str:
    """The run's fingerprint plus what differs per image: whether its target was aligned, and
    its mask."""
    mask = f"|mask={job.mask_sha256}" if job.mask_sha256 else ""
    extra = f"|{job.fingerprint}" if job.fingerprint else ""
    return f"{base}|aligned={job.aligned}{mask}{extra}"


def _load_checkpoint(job: EmbedJob, fingerprint: str, overwrite: bool) -> None:
    path = job.paths.checkpoint
    if overwrite:  # a pivotal tuning's resume state goes with the latent's
        job.paths.pti_checkpoint.unlink(missing_ok=True)
    if not path.exists():
        return
    if overwrite:
        path.unlink()
        shutil.rmtree(job.paths.frames, ignore_errors=True)
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
    job.clock = [(int(s), float(t)) for s, t in ckpt.get("clock", [])]


def _save_checkpoint(job: EmbedJob, state: EmbedState, fingerprint: str) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "fingerprint": fingerprint,
            "image": job.source.name,  # whose record the folder holds (folders.record_owner)
            "image_sha256": job.image_sha256,
            "state": state.to_dict(),
            "clock": [list(c) for c in job.clock],
        },
        buf,
    )
    with atomic_path(job.paths.checkpoint) as tmp:
        tmp.write_bytes(buf.getvalue())


def _run_batch(
    jobs: list[EmbedJob],
    targets: torch.Tensor,  # [N, 3, H, W]
    embedder: Embedder,
    options: RunOptions,
    init: torch.Tensor | None,
    base: str,
    batch: int,
    batches: int,
    stop: Callable[[], bool] | None,
    masks: torch.Tensor | None = None,  # [N, 1, H, W] or None
    keep_final: bool = False,  # checkpoint the finished state too (a tuning stage follows)
) -> Generator[BatchProgress, None, tuple[EmbedResult, bool]]:
    """Optimise one batch, yielding its progress; returns (result, stopped early)."""
    first = jobs[0].state
    state = EmbedState.merge([job.state for job in jobs if job.state]) if first else None
    steps = embedder.config.latent_steps  # W+ steps and noise-stage steps: one loop
    start = state.step if state is not None else 0
    # Reports (the only host syncs) land on every checkpoint and video frame; short runs report
    # more often so progress moves (~100 updates per run at most).
    report_every = min(options.report_every, max(1, steps // 100))
    video_every = options.video_every if options.video else 0
    every = _report_interval(report_every, options.checkpoint_every, video_every)
    last: StepReport | None = None
    stopped = False

    unsaved: set[int] = set()  # jobs whose checkpoint or frame could not be written (warned once)

    def warn_once(job: EmbedJob, what: str, e: OSError) -> None:
        if id(job) not in unsaved:
            unsaved.add(id(job))
            logger.warning("%s: cannot write its %s (%s)", job.out_dir, what, e.strerror or e)

    def save_all(report: StepReport) -> None:
        for job, s in zip(jobs, report.state().split(), strict=True):
            try:  # a checkpoint is a cache: a full disk costs the resume point, not the run
                _save_checkpoint(job, s, _job_fingerprint(base, job))
            except OSError as e:
                warn_once(job, "resume checkpoint", e)

    iterator = embedder.iterate(targets, init=init, state=state, report_every=every, masks=masks)
    try:
        for report in iterator:
            last = report
            for job in jobs:
                job.clock.append((report.step, report.elapsed))
            if video_every and report.images.numel() and report.step % video_every == 0:
                for job, img in zip(jobs, report.images, strict=True):
                    try:
                        save_image(img, job.paths.frames / f"frame_{report.step:07d}.png")
                    except OSError as e:
                        warn_once(job, "video frames", e)
            if (report.step % options.checkpoint_every == 0 and report.step < steps) or (
                keep_final and report.step == steps and report.step > start
            ):
                save_all(report)
            yield BatchProgress(jobs, report, batch, batches, start)
            if stop is not None and report.step < steps and stop():
                stopped = True
                break
    except (KeyboardInterrupt, GeneratorExit):
        if last is not None and last.step > start:  # keep the work since the last checkpoint
            save_all(last)
        raise
    finally:
        iterator.close()
    if last is None:
        raise RuntimeError("the optimisation produced no report")
    return embedder.finish(targets, last.state(), masks=masks), stopped


def _write_tuning(
    job: EmbedJob,
    tuned: TunedImage,
    tuner: PivotalTuner,
    record: Mapping[str, Any],
    before: Mapping[str, float],
) -> dict[str, Any]:
    """Write an image's tuned generator (unless shared: written already) and pti_losses.csv;
    returns the "pti" block of its latent file."""
    if tuned.file is None:
        file = job.paths.generator
        save_tuned_generator(
            tuned.generator, file, {**_tuned_source(record, tuner), "images": [job.name]}
        )
        sha = sha256_file(file)
    else:
        file, sha = tuned.file, tuned.sha256 or sha256_file(tuned.file)
    write_pti_losses_csv(job.paths.pti_losses, tuned.history, tuned.clock)
    return pti_metadata(tuner, tuned, file, job.paths.latent, sha, before)


def _report_interval(*intervals: int) -> int:
    """The largest interval that divides every non-zero interval (reports land on each)."""
    g = 0
    for k in intervals:
        if k > 0:
            g = math.gcd(g, k)
    return max(g, 1)


def select(result: EmbedResult, i: int) -> EmbedResult:
    """Row i of a batched result, as a batch of one (history [steps, 3], losses scalars)."""

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


def _write(
    job: EmbedJob,
    result: EmbedResult,
    target: torch.Tensor,
    embedder: Embedder,
    options: RunOptions,
    record: Mapping[str, Any],
    stopped: bool,
    metrics: Sequence[Metric],
    batch_images: int = 1,
    tuner: PivotalTuner | None = None,
    tuned: TunedImage | None = None,  # its pivotal tuning; `result` is then the tuned render
) -> JobOutcome:
    if not bool(torch.isfinite(result.ws).all()):
        error = (
            f"{job.source}: the optimisation diverged (the latent holds NaN or infinite values); "
            "try a smaller --lr or loss weights"
        )
        logger.error("%s", error)
        return JobOutcome.of(job, "failed", error=error)
    measured: dict[str, float] = {}
    for metric in metrics:
        measured.update(metric(result, target, job.mask))
    before: dict[str, float] = {}
    if tuned is not None:  # the pivot's metrics before tuning, as latent_* (every stage's)
        for metric in metrics:
            before.update(metric(tuned.before, target, job.mask))
        measured.update({f"latent_{k}": v for k, v in before.items()})
    if measured:  # the batch's time shared by its images
        elapsed = float(result.elapsed) + (tuned.elapsed / tuned.images if tuned else 0.0)
        measured["time_s"] = round(elapsed / max(batch_images, 1), 3)
    cfg = embedder.config
    pti = None
    if tuned is not None and tuner is not None:
        try:
            pti = _write_tuning(job, tuned, tuner, record, before)
        except (OSError, I2SError) as e:
            text = str(e) if isinstance(e, I2SError) else f"cannot write ({e.strerror or e})"
            error = text if str(job.out_dir) in text else f"{job.out_dir}: {text}"
            logger.error("%s", error)
            return JobOutcome.of(job, "failed", error=error)
    meta = latent_metadata(
        record,
        cfg,
        result,
        embedder.w_avg,
        image=job.source.name,
        image_sha256=job.image_sha256,
        fit=options.fit,
        aligned=job.aligned,
        init_file=str(options.init_file) if options.init_file is not None else None,
        stopped_early=stopped,
        metrics=measured,
        masked=job.mask is not None,
        pti=pti,
    )
    try:
        latent = write_record(job.paths, result, meta, job.clock, video=options.video)
    except (OSError, I2SError) as e:  # e.g. the disk filled up: this image fails alone
        text = str(e) if isinstance(e, I2SError) else f"cannot write ({e.strerror or e})"
        error = text if str(job.out_dir) in text else f"{job.out_dir}: {text}"
        logger.error("%s", error)
        return JobOutcome.of(job, "failed", error=error)
    if measured:
        update_metrics_csv(job.paths.run_metrics, job.name, measured)
    return JobOutcome.of(
        job,
        "done",
        losses={k: float(v) for k, v in result.losses.items()},
        steps=int(result.history.shape[0]),
        elapsed_s=float(result.elapsed),
        latent=str(latent),
        tuned_generator=os.path.normpath(latent.parent / pti["generator"]) if pti else None,
    )
