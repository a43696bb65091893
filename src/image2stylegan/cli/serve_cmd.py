"""`image2stylegan serve`: the local web UI (SPEC sections 1 and 3; needs the `ui` extra).

Stopping: Ctrl+C, SIGTERM (systemd, docker, `kill`) and SIGHUP (the terminal closed) all stop the
server the same way: running embeddings are asked to stop, the server closes, and the temporary
results folder (without --out) and the uploaded files (always: gradio's cache of them lives in
a temporary folder of this server) are deleted.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from ..errors import I2SError

if TYPE_CHECKING:
    from ..web.app import App


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=7860, show_default=True,
              help="Port to listen on.")  # fmt: skip
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind. The default serves this computer only; 0.0.0.0 opens the UI (and "
    "its file access) to your network.",
)
@click.option(
    "--generator",
    "-g",
    default=None,
    help="Generator preselected in the UI: registry name, checkpoint file, or random:ARCH-RES "
    "[default: ffhq-1024].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the results (latents, images, videos), kept after the server stops "
    "[default: a temporary folder, deleted when the server stops].",
)
@click.option("--open-browser", is_flag=True, help="Open the UI in the default web browser.")
def serve(
    port: int,
    host: str,
    generator: str | None,
    device: str,
    out: Path | None,
    open_browser: bool,
) -> None:
    """Start the local web UI: embed photos and edit them in the browser.

    \b
    Examples:
      image2stylegan serve                                  # http://127.0.0.1:7860
      image2stylegan serve --generator random:stylegan2-256 --device cpu   # offline try-out
    """
    # gradio: no usage statistics and no version check over the network
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import shutil
    import tempfile

    from .common import resolve_device

    resolve_device(device)  # fail on a bad --device before building the app
    temporary = out is None
    with _stop_on_signals():
        uploads = Path(tempfile.mkdtemp(prefix="image2stylegan-uploads-"))
        workdir = out if out is not None else Path(tempfile.mkdtemp(prefix="image2stylegan-web-"))
        try:
            with _uploads_in(uploads):
                try:  # gradio is imported here, so its temporary folder is this server's
                    import gradio  # noqa: F401
                except ImportError:
                    raise I2SError(
                        "the web UI needs gradio: pip install 'image2stylegan[ui]'"
                    ) from None
                from ..web import build_app

                app = build_app(generator=generator, device=device, workdir=workdir)
                try:
                    _serve(app, host, port, open_browser, workdir, temporary)
                finally:
                    app.workspace.stop_all()  # running embeddings end before their folder goes
                    app.close(verbose=False)
        finally:
            shutil.rmtree(uploads, ignore_errors=True)
            if temporary:
                shutil.rmtree(workdir, ignore_errors=True)
    click.echo("stopped" + (f"; {workdir} deleted" if temporary else f"; results in {workdir}"))


def _serve(
    app: App, host: str, port: int, open_browser: bool, workdir: Path, temporary: bool
) -> None:
    """Launch `app` and wait until Ctrl+C / SIGTERM / SIGHUP."""
    from ..web import launch

    try:
        url = launch(app, host=host, port=port, open_browser=open_browser, quiet=True)
    except OSError as e:
        raise I2SError(f"cannot listen on {host}:{port} ({e}); choose another --port") from None
    click.echo(f"image2stylegan web UI: {url}")
    click.echo(f"results go to {workdir}" + (" (deleted on exit)" if temporary else ""))
    click.echo("Press Ctrl+C to stop.")
    app.block_thread()  # returns after Ctrl+C / SIGTERM, with the server closed


@contextmanager
def _uploads_in(folder: Path) -> Iterator[None]:
    """gradio keeps the files people upload (and copies of what it serves) in GRADIO_TEMP_DIR:
    this server's own temporary folder, deleted when it stops."""
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the server as Ctrl+C does (a KeyboardInterrupt in the main
    thread), so the same clean-up runs; a second signal does not cut that clean-up short."""
    fired: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt

    signals = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    try:
        previous = {s: signal.signal(s, interrupt) for s in signals}
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
