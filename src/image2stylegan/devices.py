"""Where the work runs: device names ('auto', 'cpu', 'cuda', 'cuda:N') and torchrun ranks.

One place for the CLI, the web UI and library users. Messages speak of devices, not of any
interface's options: the CLI turns the `ValueError` into a usage error of `--device`, the web UI
into a message in the browser.
"""

from __future__ import annotations

import os

__all__ = ["distributed_rank", "is_out_of_memory", "resolve_device"]


def is_out_of_memory(e: BaseException) -> bool:
    """Whether `e` says an allocation failed: CUDA's OutOfMemoryError, a CPU tensor that could
    not be allocated (torch's RuntimeError), numpy's or Python's MemoryError."""
    if isinstance(e, MemoryError):
        return True
    if type(e).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA, MPS, XPU)
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) when started by torchrun (RANK / WORLD_SIZE), else (0, 1)."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        return 0, 1
    return (rank, world) if 0 <= rank < world else (0, 1)


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> 'cuda' when available (under torchrun: cuda:LOCAL_RANK), else 'cpu'.

    Raises `ValueError` for a CUDA device on a machine without CUDA.
    """
    import torch

    device = (device or "auto").strip()
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        local = int(os.environ.get("LOCAL_RANK", 0)) if distributed_rank()[1] > 1 else 0
        return f"cuda:{local % torch.cuda.device_count()}" if local else "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"CUDA is not available on this machine (asked for {device!r}); use 'cpu'")
    return device
