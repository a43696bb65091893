"""The package's layout shows the pipeline, and no import runs back up it:

    foundations -> image -> models -> checkpoints -> losses -> metrics -> embed -> edit
                -> experiments -> web -> cli

A module may import modules of its own layer or of layers before it, never one after it, and
nothing imports the package root (the public API of SPEC section 2 sits on top of everything).
The imports are read with `ast` from the source (also lazy ones inside functions and those under
TYPE_CHECKING), so the test sees every arrow the code has.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "image2stylegan"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# (layer, the top-level modules / subpackages in it), in pipeline order
LAYERS: list[tuple[str, set[str]]] = [
    ("foundations", {"_version", "errors", "fileio", "devices"}),
    ("image", {"image", "align", "latents", "video"}),
    ("models", {"models"}),
    ("checkpoints", {"checkpoints"}),
    ("losses", {"losses"}),
    ("metrics", {"metrics"}),
    ("embed", {"embed"}),
    ("edit", {"edit"}),
    ("experiments", {"experiments"}),
    ("web", {"web"}),
    ("cli", {"cli", "__main__"}),
]
RANK = {name: k for k, (_, names) in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Fully qualified names of the package's modules that `source` imports."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            # `from .. import align` imports the submodule `align`
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if _is_module(f"{target}.{n}")]
            found |= set(subs) if subs and len(subs) == len(names) else {target}
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def layer_of(module: str) -> int | None:
    """Rank of a module's layer; None for the package root."""
    parts = module.split(".")
    return None if len(parts) == 1 else RANK[parts[1]]


def violations() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        src_rank = layer_of(module)
        for target in sorted(
            imported_modules(path.read_text(), module, path.name == "__init__.py")
        ):
            tgt_rank = layer_of(target)
            if tgt_rank is None and src_rank is not None:
                out.append(f"{module} imports the package root ({target})")
            elif src_rank is not None and tgt_rank is not None and tgt_rank > src_rank:
                out.append(
                    f"{module} ({LAYERS[src_rank][0]}) imports {target} ({LAYERS[tgt_rank][0]})"
                )
    return out


def test_every_module_belongs_to_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in SRC.iterdir()}
    tops = {
        t for t in tops if not t.startswith((".", "__pycache__")) and t not in ("py", "__init__")
    }
    tops.discard("py")
    tops = {t for t in tops if (SRC / f"{t}.py").is_file() or (SRC / t / "__init__.py").is_file()}
    assert tops <= set(RANK), f"modules without a layer: {sorted(tops - set(RANK))}"


def test_no_import_runs_back_up_the_pipeline():
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("image2stylegan.embed.runner", "from .. import __version__", {"image2stylegan"}),
        (
            "image2stylegan.embed.runner",
            "from ..cli.common import x",
            {"image2stylegan.cli.common"},
        ),
        ("image2stylegan.cli.common", "from .. import devices", {"image2stylegan.devices"}),
        ("image2stylegan.losses", "import image2stylegan.embed", {"image2stylegan.embed"}),
        ("image2stylegan.image", "import numpy", set()),
    ],
)
def test_the_import_reader_sees_each_kind_of_import(module, source, expected):
    assert imported_modules(source, module, is_package=False) == expected
    ranks = [layer_of(t) for t in expected]
    if "cli" in source or "embed" in source:  # the upward arrows this test must catch
        assert all(r is not None and r > layer_of(module) for r in ranks)
