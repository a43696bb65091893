"""`image2stylegan experiment NAME`: one command per experiment of the paper (SPEC section 6).

Writes DIR/results.csv, PNG figures and DIR/report.md (the measured numbers beside the paper's,
with the exact command and settings). Embeddings go to DIR/embeddings/<variant>/<image>/ in the
embed layout, so re-running the same command resumes and reuses them.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ..experiments import EXPERIMENTS
from .common import echo_json, expand_image_inputs, show_library_log
from .embed_options import embed_options, load_run, run_options

log = logging.getLogger("image2stylegan.cli.experiment")

_GREEDY = ("--images", "-i")  # options that take every following value up to the next option


def _expand_greedy(args: list[str]) -> list[str]:
    """`--images a b c` -> `--images a --images b --images c` (a click option takes one value):
    values after --images up to the next option all belong to it."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out += args[i:]
            break
        if arg in _GREEDY and i < len(args):
            out.append(args[i])  # the first value, as click would take it
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                out += [arg, args[i]]
                i += 1
    return out


class _ExperimentCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_greedy(list(args)))


def _help() -> str:
    lines = [
        "Run one experiment of the paper on a generator and images; write results.csv, PNG",
        "figures and report.md (our numbers beside the paper's) to --out.",
        "",
        "\b",
        "Experiments (NAME):",
    ]
    width = max(len(n) for n in EXPERIMENTS)
    for spec in EXPERIMENTS.values():
        lines.append(f"  {spec.name:<{width}}  {spec.reproduces}: {spec.summary}")
    lines += [
        "",
        "Every `embed` option applies to every embedding of the experiment (the experiment then",
        "varies what it studies). Experiment parameters: --param KEY=VALUE (see --list).",
        "Categories (face, cat, dog, car, painting) come from file-name prefixes (face_01.jpg)",
        "or folder names (faces/x.jpg). Re-running the same command resumes.",
        "",
        "\b",
        "Examples (the paper's setting: ffhq-1024 and vgg16-caffe, downloaded once):",
        "  image2stylegan experiment affine --images faces/ --out runs/affine",
        "  image2stylegan experiment init --images dataset/ --out runs/init",
        "Quick pass:",
        "  image2stylegan experiment convergence --images dataset/ --steps 500 --out runs/c",
    ]
    return "\n".join(lines)


@click.command(
    cls=_ExperimentCommand,
    help=_help(),
    short_help="Rerun a table or figure of the paper.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("name", required=False, type=click.Choice(list(EXPERIMENTS)), metavar="NAME")
@click.argument("extra_images", nargs=-1, metavar="[IMAGE...]")
@click.option(
    "--images",
    "-i",
    multiple=True,
    metavar="IMAGE_OR_DIR...",
    help="Input images, folders or globs (several after one --images).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Experiment folder [experiments/NAME].",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="An experiment parameter (repeatable); --list shows each experiment's.",
)
@click.option("--list", "list_", is_flag=True, help="List the experiments and their parameters.")
@click.option("--recursive", is_flag=True, help="Also take images in sub-folders of folders.")
@embed_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def experiment(**opts: Any) -> None:
    from ..experiments import load_experiment
    from ..experiments.context import ExperimentContext
    from ..experiments.items import collect_items, sort_items
    from ..experiments.params import describe_params, parse_params
    from .progress import EmbedProgress

    if opts["list_"]:
        for spec in EXPERIMENTS.values():
            module = load_experiment(spec.name)
            click.echo(f"{spec.name}  ({spec.reproduces})\n    {spec.summary}")
            for key, tname, default in describe_params(module.Params):
                click.echo(f"    --param {key}=...  ({tname}, default {default})")
        return
    name = opts["name"]
    if name is None:
        raise click.UsageError("give an experiment NAME (see --list)")
    module = load_experiment(name)
    try:
        params = parse_params(module.Params, opts["params"])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--param") from None
    inputs = [*opts["images"], *opts["extra_images"]]
    if not inputs:
        raise click.UsageError("no input images: give --images IMAGE_OR_DIR...")
    out: Path = opts["out"] or Path("experiments") / name
    sources = expand_image_inputs(inputs, recursive=opts["recursive"], exclude=out)
    if not sources:
        raise click.UsageError("no input images found in " + ", ".join(inputs))
    quiet = opts["quiet"]
    show_library_log(quiet, info_from=("image2stylegan.experiments", log.name))

    command = _command_line(click.get_current_context(), name, inputs, out)
    options = run_options(opts)
    pipeline = load_run(options)
    bars = EmbedProgress(enabled=not quiet)
    ctx = ExperimentContext(pipeline, out, on_report=bars)
    items = sort_items(collect_items(sources))
    log.info("%s: %d image(s) -> %s", name, len(items), out)
    t0 = time.perf_counter()
    try:
        result = module.run(ctx, items, params)
    finally:
        bars.close()
    elapsed = time.perf_counter() - t0

    from .._version import __version__
    from ..experiments.report import write_csv, write_report

    csv_path = write_csv(out / "results.csv", result.rows)
    report_path = write_report(
        out / "report.md",
        name=name,
        title=module.TITLE,
        description=module.DESCRIPTION,
        command=command,
        config=pipeline.config,
        metadata=pipeline.record(),
        run_settings={
            "images": len(items),
            "batch size": options.batch_size,
            "align": pipeline.align,
            "fit": options.fit,
        },
        params=vars(params),
        result=result,
        varies=getattr(module, "VARIES", ()),
        elapsed_s=elapsed,
        version=__version__,
    )
    if opts["as_json"]:
        echo_json(
            {
                "experiment": name,
                "out": str(out),
                "report": str(report_path),
                "results": str(csv_path),
                "figures": [str(f.path) for f in result.figures],
                "claims": [
                    {"source": c.source, "paper": c.paper, "measured": c.measured, "holds": c.holds}
                    for c in result.claims
                ],
                "failed": [{"what": w, "error": e} for w, e in result.failures],
            }
        )
    log.info(
        "wrote %s, %s and %d figure(s) (%.1f s)", report_path, csv_path, len(result.figures),
        elapsed,
    )  # fmt: skip
    if result.failures:
        click.echo(
            f"{len(result.failures)} embedding(s) or input(s) failed (see the messages above "
            f"and {report_path})",
            err=True,
        )
        sys.exit(1)


def _command_line(ctx: click.Context, name: str, inputs: list[str], out: Path) -> str:
    """The command as run: the experiment, its inputs and every option given on the command line
    (the generator and --out always)."""
    parts = ["image2stylegan", "experiment", name, "--images", *inputs]
    given = {"out": str(out)}
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in ("images", "list_"):
            continue
        if param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if param.name not in ("generator",) and source is not ParameterSource.COMMANDLINE:
            continue
        if param.name == "out":
            continue
        value = ctx.params[param.name]
        long = max(param.opts, key=len)
        if param.is_flag and param.secondary_opts:  # --align / --no-align
            parts.append(long if value else max(param.secondary_opts, key=len))
        elif param.is_flag:
            if value:
                parts.append(long)
        elif param.multiple:
            for v in value:
                parts += [long, str(v)]
        elif value is not None:
            parts += [long, str(value)]
    parts += ["--out", given["out"]]
    return shlex.join(parts)
