"""experiments/paper_numbers.py against the paper's text (../shared/paper): every row's label and
numbers as printed, and reports that quote them exactly as printed (3.530, not 3.53)."""

from __future__ import annotations

import re

import pytest

from image2stylegan.experiments.paper_numbers import (
    FIG10_CONVERGENCE_STEPS,
    PAPER_SETTINGS,
    TABLE1_AFFINE,
    TABLE2_INIT,
    TABLE3_DEFECTS,
    Printed,
)
from image2stylegan.experiments.report import format_value, table_markdown
from image2stylegan.experiments.results import Table

from .conftest import SHARED

PAPER = SHARED / "paper" / "image2stylegan-iccv2019.txt"
NUMBER = r"(\d+\.\d+)"


@pytest.fixture(scope="module")
def paper() -> str:
    if not PAPER.is_file():
        pytest.fail(f"the paper's text is not at {PAPER} (set IMAGE2STYLEGAN_SHARED)")
    return PAPER.read_text().replace("◦", "°")  # the PDF's degree sign


def rows(text: str) -> dict[str, tuple[str, str]]:
    """'<label> <L> <dist>' lines of a table -> label -> (L, dist) as printed."""
    found = {}
    for line in text.splitlines():
        m = re.fullmatch(rf"(.+?) {NUMBER} {NUMBER}", line.strip())
        if m:
            found[m.group(1)] = (m.group(2), m.group(3))
    return found


def test_table1_and_table3_rows_are_the_papers(paper):
    printed = rows(paper)
    for table in (TABLE1_AFFINE, TABLE3_DEFECTS):
        for row in table.values():
            assert printed[row.label] == (row.loss_e5.text, row.w_dist.text), row.label


def test_table2_rows_are_the_papers(paper):
    block = paper[paper.index("Data class w Init.") : paper.index("Table 2:")]
    printed: dict[tuple[str, str], tuple[str, str]] = {}
    category = ""
    for line in (s.strip() for s in block.splitlines()):
        if line in ("Face", "Cat", "Dog", "Painting", "Car"):
            category = line.lower()
        elif m := re.fullmatch(rf"(w = w\u0304|Random) {NUMBER} {NUMBER}", line):
            init = "mean" if m.group(1).startswith("w") else "random"
            printed[(category, init)] = (m.group(2), m.group(3))
    assert len(printed) == 10 and set(printed) == set(TABLE2_INIT)
    for key, row in TABLE2_INIT.items():
        assert printed[key] == (row.loss_e5.text, row.w_dist.text), key
        assert row.label.lower().startswith(key[0])


def test_convergence_steps_and_settings_are_the_papers(paper):
    text = " ".join(paper.split()).replace("- ", "")  # line-end hyphenation
    assert "converges at around 1000 optimization steps" in text
    assert "converge slower at around 3000 optimization steps" in text
    assert "converges around 5000 optimization steps" in text
    assert FIG10_CONVERGENCE_STEPS == {"face": 1000, "cat": 3000, "dog": 3000, "car": 3000,
                                       "painting": 5000}  # fmt: skip
    assert PAPER_SETTINGS["steps"] == 5000 and PAPER_SETTINGS["lr"] == 0.01


def test_reports_quote_the_numbers_as_printed():
    row = TABLE2_INIT[("painting", "mean")]
    assert (format_value(row.loss_e5), format_value(row.w_dist)) == ("3.530", "103.61")
    assert format_value(TABLE2_INIT[("face", "random")].w_dist) == "35.60"
    assert format_value(103.61) == "103.6"  # our measurements: 4 significant digits
    md = table_markdown(Table("t", ["class", "paper"], [["painting", row.w_dist]]))
    assert "| painting | 103.61 |" in md
    p = Printed("0.310")
    assert p == pytest.approx(0.31) and f"{p}" == "0.310" and f"{p:.2f}" == "0.31"
