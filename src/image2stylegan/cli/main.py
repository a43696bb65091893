"""Entry point of the `image2stylegan` command: a click group whose subcommands load lazily.

Exit codes (SPEC section 3): 0 success, 1 some inputs failed, 2 usage error. Library errors
(`I2SError`) and usage errors are printed as one line each (`error: ...`), never a traceback;
control characters in them (from odd file names) are written as escapes.
"""

from __future__ import annotations

import importlib
import sys

import click

from .._version import __version__
from ..errors import I2SError, one_line

# command name -> "module:attribute" of its click command. Each lives in its own module so that
# `image2stylegan --help` stays fast (torch is imported only by the command that runs).
COMMANDS: dict[str, str] = {
    "embed": ".embed_cmd:embed",
    "weights": ".weights_cmd:weights",
    "align": ".align_cmd:align",
    "generate": ".generate_cmd:generate",
    "morph": ".morph_cmd:morph",
    "style-transfer": ".style_transfer_cmd:style_transfer",
    "expression": ".expression_cmd:expression",
    "walk": ".walk_cmd:walk",
    "convert": ".convert_cmd:convert",
    "serve": ".serve_cmd:serve",
    "experiment": ".experiment_cmd:experiment",
    "evaluate": ".evaluate_cmd:evaluate",
    "inpaint": ".local_edits_cmd:inpaint",
    "crossover": ".local_edits_cmd:crossover",
    "local-style": ".local_edits_cmd:local_style",
    "scribble": ".local_edits_cmd:scribble",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name, package=__package__)
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="image2stylegan")
def cli() -> None:
    """Embed images into a pretrained StyleGAN's latent space and edit them there
    (Image2StyleGAN, Abdal et al., ICCV 2019).

    \b
    Typical session:
      image2stylegan align photo.jpg --out aligned/
      image2stylegan embed aligned/photo.png --out embeddings/
      image2stylegan morph embeddings/a/latent.npz embeddings/b/latent.npz --out morph.mp4
    Run `image2stylegan COMMAND --help` for each command's options.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning library errors into one-line messages."""
    from .common import show_library_log

    show_library_log()  # the library's warnings and errors, one line each on stderr
    try:
        rc = cli.main(args=argv, prog_name="image2stylegan", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as e:  # one line, with where to read more
        command = e.ctx.command_path if e.ctx is not None else "image2stylegan"
        hint = f" (see `{command} --help`)"
        click.echo(f"error: {one_line(e.format_message())}{hint}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except I2SError as e:
        click.echo(f"error: {one_line(str(e))}", err=True)
        sys.exit(1)
    except (MemoryError, RuntimeError) as e:
        from ..devices import is_out_of_memory

        if not is_out_of_memory(e):
            raise  # a bug: its traceback is what a report needs
        click.echo(
            "error: out of memory; use a smaller --batch-size, fewer frames or images, or "
            "another --device",
            err=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted; finished outputs are kept, re-run to resume.", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
