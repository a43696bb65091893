"""`image2stylegan serve`: the local web UI (SPEC sections 1 and 3; needs the `ui` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import I2SError


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
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise I2SError("the web UI needs gradio: pip install 'image2stylegan[ui]'") from None
    import shutil
    import tempfile

    from ..web import build_app, launch
    from .common import resolve_device

    resolve_device(device)  # fail on a bad --device before building the app
    temporary = out is None
    workdir = out if out is not None else Path(tempfile.mkdtemp(prefix="image2stylegan-web-"))
    app = build_app(generator=generator, device=device, workdir=workdir)
    try:
        try:
            url = launch(app, host=host, port=port, open_browser=open_browser, quiet=True)
        except OSError as e:
            raise I2SError(f"cannot listen on {host}:{port} ({e}); choose another --port") from None
        click.echo(f"image2stylegan web UI: {url}")
        click.echo(f"results go to {workdir}" + (" (deleted on exit)" if temporary else ""))
        click.echo("Press Ctrl+C to stop.")
        app.block_thread()  # returns after Ctrl+C, with the server closed
    finally:
        app.close()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
