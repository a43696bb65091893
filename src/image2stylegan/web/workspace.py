"""State the web UI shares between requests: loaded models, the output folder, stop flags.

Nothing here imports gradio: the callbacks (embedding.py, editing.py) and the layout (app.py) do.

- One generator load per (source, device), cached for the life of the server, with a lock per
  key so two requests asking for the same generator at once load it once.
- One VGG-16 per (source, device), likewise (the perceptual loss of Eq. 1).
- Every run writes into its own numbered folder under `workdir` (`embed-0001/`, `morph-0002/`).
- Stop flags are per browser session, so one user's Stop never ends another user's run.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from ..devices import resolve_device
from ..embed.generators import GeneratorInfo
from ..models.base import Generator
from ..models.vgg16 import VGG16Features

__all__ = ["Workspace", "resolve_device"]

log = logging.getLogger(__name__)


class Workspace:
    """Model caches, the output folder and the per-session stop flags of one server."""

    def __init__(
        self,
        device: str = "auto",  # where models run: auto (CUDA when available), cpu, cuda, cuda:N
        workdir: str | os.PathLike | None = None,  # where results go; None = a new temp folder
        default_generator: str | None = None,  # preselected generator (the --generator option)
    ) -> None:
        self.device = resolve_device(device)
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="image2stylegan-web-")
        self.workdir = Path(workdir).absolute()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.default_generator = default_generator
        self._generators: dict[tuple[str, str], tuple[Generator, GeneratorInfo]] = {}
        self._vggs: dict[tuple[str, str], VGG16Features] = {}
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self._runs = itertools.count(1)

    # --- models --------------------------------------------------------------------------------

    def _key_lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    @staticmethod
    def _source_key(source: str) -> str:
        """Files are keyed by their absolute path, names and `random:` sources as written."""
        p = Path(source)
        return str(p.resolve()) if p.exists() else source

    def generator(self, source: str) -> tuple[Generator, GeneratorInfo]:
        """(G, its description) for a registry name, checkpoint file or `random:` source;
        loaded once (`embed.generators.open_generator`)."""
        from ..embed.generators import open_generator

        source = (source or "").strip()
        if not source:
            raise ValueError(
                "no generator given: enter a registry name (e.g. ffhq-1024), a checkpoint file "
                "on this computer, or random:stylegan2-256 for a quick offline test"
            )
        key = (self._source_key(source), self.device)
        with self._key_lock(("G", *key)):
            if key not in self._generators:
                log.info("loading generator %s on %s", source, self.device)
                self._generators[key] = open_generator(source, device=self.device)
            return self._generators[key]

    def vgg(self, source: str) -> VGG16Features:
        """VGG-16 features of the perceptual loss (registry name, file, "random"); loaded once."""
        from ..checkpoints.vgg_weights import load_vgg16

        source = (source or "vgg16-caffe").strip()
        key = (self._source_key(source), self.device)
        with self._key_lock(("vgg", *key)):
            if key not in self._vggs:
                log.info("loading VGG-16 %s on %s", source, self.device)
                self._vggs[key] = load_vgg16(source, device=self.device)
            return self._vggs[key]

    def is_loaded(self, source: str) -> bool:
        return (self._source_key((source or "").strip()), self.device) in self._generators

    # --- outputs -------------------------------------------------------------------------------

    def new_run_dir(self, kind: str) -> Path:
        """A fresh folder `<workdir>/<kind>-NNNN` (never one an earlier run wrote into)."""
        while True:
            path = self.workdir / f"{kind}-{next(self._runs):04d}"
            try:
                path.mkdir(parents=True)
                return path
            except FileExistsError:  # left by an earlier server on the same --out folder
                continue

    # --- stop flags ----------------------------------------------------------------------------

    def start_run(self, session: str) -> threading.Event:
        """A new stop flag for `session`'s run (replacing any earlier one)."""
        event = threading.Event()
        with self._lock:
            self._stops[session] = event
        return event

    def end_run(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._stops.get(session) is event:
                del self._stops[session]

    def stop_all(self, timeout: float = 10.0) -> bool:
        """Ask every running embedding to stop (the server is shutting down) and wait up to
        `timeout` seconds for them to end; True when none is left running."""
        with self._lock:
            events = list(self._stops.values())
        for event in events:
            event.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._stops:
                    return True
            time.sleep(0.05)
        return False

    def request_stop(self, session: str) -> bool:
        """Ask `session`'s running embedding to stop; False when it has none running."""
        with self._lock:
            event = self._stops.get(session)
        if event is None:
            return False
        event.set()
        return True
