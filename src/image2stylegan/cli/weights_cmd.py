"""`image2stylegan weights list | download | verify | path`: the named-weights cache (SPEC 3, 4)."""

from __future__ import annotations

import json
import sys

import click

from ..checkpoints import registry
from ..errors import WeightsError


def _human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _fail(lines: list[str]) -> None:
    """Print each failure as one line on stderr and exit with status 1 (SPEC 3)."""
    for line in lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(1)


@click.group(name="weights")
def weights() -> None:
    """List, download and verify the named pretrained weights.

    \b
    Files live in $IMAGE2STYLEGAN_HOME (default ~/.cache/image2stylegan). Offline, download a
    file yourself and put it where `image2stylegan weights path NAME` says.
    """


@weights.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_cmd(as_json: bool) -> None:
    """Show every registry name, its kind, size, and whether it is in the cache."""
    rows = []
    for name, entry in registry.REGISTRY.items():
        path = registry.cached_path(name)
        rows.append((entry, path, path.is_file()))
    if as_json:
        records = []
        for entry, path, cached in rows:
            records.append(
                {
                    "name": entry.name,
                    "kind": entry.kind,
                    "filename": entry.filename,
                    "urls": list(entry.urls),
                    "size": entry.size,
                    "sha256": entry.sha256,
                    "checksum_source": entry.checksum_source,
                    "description": entry.description,
                    "architecture": entry.architecture,
                    "resolution": entry.resolution,
                    "domain": entry.domain,
                    "content_size": list(entry.content_size) if entry.content_size else None,
                    "default_align": entry.default_align,
                    "license": entry.license,
                    "path": str(path),
                    "cached": cached,
                }
            )
        click.echo(json.dumps(records, indent=2))
        return
    header = ("NAME", "KIND", "SIZE", "CACHED", "DESCRIPTION")
    table = [header] + [
        (e.name, e.kind, _human_size(e.size), "yes" if cached else "no", e.description)
        for e, _, cached in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))
    click.echo(f"\ncache: {registry.cache_dir()}")


@weights.command(name="download")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--force", is_flag=True, help="Download again even if a cached copy exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def download_cmd(names: tuple[str, ...], force: bool, quiet: bool) -> None:
    """Download NAME... into the cache and verify size and sha256."""
    failures = []
    for name in names:
        try:
            path = registry.download_entry(name, force=force, progress=not quiet)
        except WeightsError as e:
            failures.append(str(e))
            continue
        click.echo(f"{name}: {path}")
    if failures:
        _fail(failures)


@weights.command(name="verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
def verify_cmd(names: tuple[str, ...]) -> None:
    """Recompute size and sha256 of cached files: OK / MISSING / MISMATCH.

    Without NAME, checks every file present in the cache. Exit status 1 on any problem.
    """
    if not names:
        names = tuple(n for n in registry.REGISTRY if registry.cached_path(n).is_file())
        if not names:
            click.echo(f"nothing cached in {registry.cache_dir()}")
            return
    errors, bad = [], False
    for name in names:
        try:
            result = registry.verify_cached(name)
        except WeightsError as e:  # unknown name
            errors.append(str(e))
            continue
        click.echo(f"{result.status:<8} {name}: {result.detail}")
        bad = bad or result.status != "OK"
    if errors or bad:
        _fail(errors)


@weights.command(name="path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Print the cache path of NAME (where to place a file downloaded by hand)."""
    click.echo(str(registry.cached_path(name)))
