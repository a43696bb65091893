"""Run many `image2stylegan` command lines in one Python process (one import of torch), each as
the console script would, under the memory cap the caller sets (`prlimit --as`):

    python -m tests.cli_batch CASES.json RESULTS.json

CASES.json: [{"argv": [...], "cwd": "..."}, ...]. RESULTS.json: one {"code", "stdout",
"stderr", "seconds"} per case, in order. An exception that escapes `main` is recorded with its
traceback (code "traceback"), never allowed to end the batch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback


def run_case(argv: list[str], cwd: str) -> dict:
    from image2stylegan.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    previous = os.getcwd()
    os.chdir(cwd)
    code: int | str | None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # what a user would see as a traceback
                err.write(traceback.format_exc())
                code = "traceback"
    finally:
        os.chdir(previous)
    return {
        "code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    import torch

    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run_case(c["argv"], c["cwd"]) for c in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
