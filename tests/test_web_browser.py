"""The web UI in a real browser: Debian's chromium driven by Playwright (pip `playwright`, with the
system browser: never `playwright install`), against a real `image2stylegan serve` process on a
tiny generator with random VGG weights.

The flow a user follows: upload two photos, start a short embedding, watch the preview and the
loss curve update, stop it, download a latent, morph the two latents, generate from seeds. A
screenshot of every tab is taken on the way (docs/images/web-*.png, shown in docs/web-ui.md;
`I2S_UPDATE_SCREENSHOTS=1` copies the new ones there).

CI installs chromium (`.ci/run`); the test skips, saying so, only where no chromium exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image2stylegan.checkpoints.native import save_native
from image2stylegan.latents import load_latent

from .conftest import REPO
from .fixtures.embedding import embedding_generator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "docs" / "images"
WAIT_MS = 180_000  # the longest wait for one step of the flow on two shared cores

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (CI installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A running `image2stylegan serve` on a tiny generator: (url, results folder)."""
    pytest.importorskip("gradio")
    gen = save_native(embedding_generator(32), tmp_path / "tiny.safetensors", source="test")
    out = tmp_path / "results"
    port = _free_port()
    env = {**os.environ, "TORCH_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "image2stylegan", "serve", "--generator", str(gen), "--port",
         str(port), "--device", "cpu", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.stdout is not None:
            line = proc.stdout.readline()
            lines.append(line)
            if not line or "Press Ctrl+C" in line:
                break
        assert any("Press Ctrl+C" in x for x in lines), "".join(lines)
        yield f"http://127.0.0.1:{port}/", out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"web-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("I2S_UPDATE_SCREENSHOTS") == "1":  # the docs' copy: 128 colours suffice
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        small = Image.open(path).convert("RGB").quantize(128, method=Image.Quantize.MEDIANCUT)
        small.save(SCREENSHOTS / path.name, optimize=True)
    return path


def _block(page, label: str):
    """The component whose label is `label` (gradio draws it as a .block with that text)."""
    return page.locator(".block", has=page.get_by_text(label, exact=True)).last


def _set_number(page, label: str, value: str) -> None:
    box = page.get_by_label(label).first  # a slider's number box comes before its range
    box.fill(value)
    box.press("Tab")  # gradio takes a number's value when it loses focus


def _image_src(block) -> str | None:
    img = block.locator("img")
    return img.first.get_attribute("src") if img.count() else None


def test_embed_stop_download_and_morph_in_chromium(server, shared_images, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    url, results = server
    started = time.monotonic()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000},
                                       accept_downloads=True).new_page()  # fmt: skip
            page.set_default_timeout(WAIT_MS)
            page.goto(url)
            page.get_by_role("tab", name="Embed").wait_for()

            # --- Embed: two photos in one batch, random VGG at 32 px, previews every 2 steps
            page.locator("input[type=file]").first.set_input_files(
                [str(shared_images / "face_01.jpg"), str(shared_images / "cat_01.jpg")]
            )
            vgg = page.get_by_label("VGG-16 for the perceptual loss")
            vgg.click()
            vgg.fill("random")
            page.get_by_role("option", name="random: untrained weights, for testing only").click()
            _set_number(page, "Steps", "3000")
            _set_number(page, "Preview every N steps", "2")
            page.get_by_text("Advanced", exact=True).click()
            _set_number(page, "Images per batch", "2")
            size = page.get_by_label("Perceptual size (px or full)")
            size.click()
            size.fill("32")
            size.press("Enter")
            page.get_by_role("button", name="Embed", exact=True).click()

            preview, curve = _block(page, "Target | reconstruction"), _block(page, "Loss")
            preview.locator("img").first.wait_for()
            curve.locator("img").first.wait_for()
            first_preview, first_curve = _image_src(preview), _image_src(curve)
            deadline = time.monotonic() + WAIT_MS / 1000
            while time.monotonic() < deadline:  # both keep moving while it runs
                if _image_src(preview) != first_preview and _image_src(curve) != first_curve:
                    break
                time.sleep(0.2)
            assert _image_src(preview) != first_preview, "the preview never updated"
            assert _image_src(curve) != first_curve, "the loss curve never updated"
            page.get_by_text("20/3000").wait_for()  # a curve worth looking at, then Stop
            status = page.locator(".prose", has_text="/3000").last.inner_text()
            assert "step" in status and "loss" in status, status

            # --- Stop: the reached latents are saved and offered for download
            page.get_by_role("button", name="Stop", exact=True).click()
            page.get_by_text("Stopped at step").wait_for()
            files = _block(page, "Latent files (.npz)").locator("a")
            try:
                files.nth(1).wait_for()
            except sync_api.Error:  # say what the page reported instead of the two files
                report = page.locator(".prose", has_text="Stopped at step").last.inner_text()
                offered = files.count()
                raise AssertionError(f"{offered} latent file(s) offered; page: {report}") from None
            _shot(page, tmp_path, "embed")
            with page.expect_download() as download:
                files.first.click()
            latent_path = tmp_path / download.value.suggested_filename
            download.value.save_as(latent_path)
            latent = load_latent(latent_path)
            assert latent.w.shape == (1, 8, 16)  # the tiny generator's [1, num_ws, w_dim]
            assert latent.metadata["stopped_early"] is True and latent.metadata["vgg"] == "random"

            # --- Edit: morph the two latents of the library
            page.get_by_role("tab", name="Edit", exact=True).click()
            page.get_by_role("tab", name="Morph").click()
            picker = page.get_by_label("Latents, in order (A → B → …)")
            for name in ("face_01", "cat_01"):  # A -> B, labelled by the image names
                picker.click()
                page.get_by_role("option").filter(has_text=name).first.click()
            _set_number(page, "Frames per segment", "6")
            page.get_by_role("button", name="Morph", exact=True).click()
            video = _block(page, "Morph").locator("video")
            video.wait_for()
            assert (video.get_attribute("src") or "").endswith(".mp4")
            _block(page, "Frames").locator("img").first.wait_for()
            _shot(page, tmp_path, "edit-morph")
            for tab, name in (("Style transfer", "edit-style-transfer"),
                              ("Expression transfer", "edit-expression"),
                              ("Random walk", "edit-walk")):  # fmt: skip
                page.get_by_role("tab", name=tab).click()
                page.get_by_role("button").filter(has_text="Transfer" if "walk" not in name
                                                  else "Walk").first.wait_for()  # fmt: skip
                _shot(page, tmp_path, name)

            # --- Generate: four seeds
            page.get_by_role("tab", name="Generate").click()
            seeds = page.get_by_label("Seeds")
            seeds.fill("0-3")
            page.get_by_role("button", name="Generate", exact=True).click()
            page.get_by_text("4 image(s) from").wait_for()
            _shot(page, tmp_path, "generate")
        finally:
            browser.close()
    elapsed = time.monotonic() - started

    # the server wrote the run's files; every screenshot shows something
    assert len(list(results.glob("embed-*/*.npz"))) == 2
    assert list(results.glob("morph-*/*.mp4"))
    for shot in tmp_path.glob("web-*.png"):
        pixels = np.asarray(Image.open(shot).convert("L"))
        assert pixels.shape[1] == 1280 and pixels.std() > 10, shot
    assert len(list(tmp_path.glob("web-*.png"))) == 6
    assert elapsed < 600
