"""The README's "Run the tests" command is exactly what CI runs (.ci/run)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_command() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Run the tests", 1)[1]
    block = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert block, "no bash block under 'Run the tests'"
    return block.group(1).strip()


def _ci_command() -> str:
    lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip()
        and not line.startswith("#")
        and not line.startswith(("set ", "cd ", "command -v chromium"))  # system set-up
    ]
    assert len(lines) == 1, lines
    return lines[0]


def test_readme_test_command_is_what_ci_runs():
    assert _readme_command() == _ci_command()
    assert "mypy" in _ci_command() and "ruff check ." in _ci_command()
