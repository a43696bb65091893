"""`image2stylegan serve`: options, the message without gradio, and a start-and-stop run."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import pytest

from image2stylegan.cli.main import main

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_serve_help_lists_the_options(capsys):
    code, out, _ = run_cli(["serve", "--help"], capsys)
    assert code == 0
    for option in ("--port", "--host", "--generator", "--device", "--out", "127.0.0.1", "7860"):
        assert option in out


def test_serve_without_gradio_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    code, _, err = run_cli(["serve"], capsys)
    assert code == 1 and "pip install 'image2stylegan[ui]'" in err and "Traceback" not in err


def test_serve_starts_on_localhost_and_cleans_up(capsys, monkeypatch):
    gr = pytest.importorskip("gradio")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)  # "Ctrl+C" at once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, _ = run_cli(
        ["serve", "--port", port, "--generator", "random:stylegan2-8", "--device", "cpu"], capsys
    )
    assert code == 0
    assert f"http://127.0.0.1:{port}/" in out
    workdir = Path(re.search(r"results go to (\S+)", out).group(1))
    assert "deleted on exit" in out and not workdir.exists()
