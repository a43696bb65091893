"""Progress bars of the embedding commands, drawn from the embed runner's reports (tqdm on
stderr): one bar per batch with the steps, the mean loss and the ETA; the noise stage and
pivotal tuning continue the batch's bar, labelled by their phase."""

from __future__ import annotations

from typing import Any

from ..embed.runner import BatchProgress

__all__ = ["EmbedProgress"]


class EmbedProgress:
    """`on_report` for the embed runner; `close()` when the run ends."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._batch: tuple[int, int, int] | None = None  # (id of the jobs, batch, batches)

    def __call__(self, progress: BatchProgress) -> None:
        if not self.enabled:
            return
        key = (id(progress.jobs), progress.batch, progress.batches)
        if key != self._batch:
            self.close()
            self._batch = key
            self._bar = self._open(progress)
        report = progress.report
        losses = report.losses[:, 0].float().cpu()  # the one host sync per report
        self._bar.update(report.step - self._bar.n)
        phase = {"noise": "noise ", "pti": "tuning "}.get(report.phase, "")
        self._bar.set_postfix_str(f"{phase}loss {float(losses.mean()):.4g}")

    @staticmethod
    def _open(progress: BatchProgress) -> Any:
        from tqdm.auto import tqdm

        names = [job.name for job in progress.jobs]
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        label = f"batch {progress.batch}/{progress.batches} " if progress.batches > 1 else ""
        return tqdm(
            total=progress.report.steps,
            initial=progress.start,
            desc=f"{label}{shown}".strip(),
            unit="step",
            dynamic_ncols=True,
            leave=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._batch = None
