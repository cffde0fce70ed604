"""The ``reidkit`` command: one typer app; each pipeline stage adds its commands from its own module.

Stage modules import torch and friends only inside their command functions, so ``reidkit --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from reidkit.errors import ReidkitError

app = typer.Typer(
    name="reidkit",
    help="Person re-identification: train and test ReID models, evaluate features, search people in video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_stages() -> None:
    from reidkit.cli import eval_cmd

    eval_cmd.register(app)
    for name in ("train_cmd", "video_cmd", "demo_cmd"):
        try:
            module = __import__(f"reidkit.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"reidkit.cli.{name}":
                raise
            continue
        module.register(app)


_register_stages()


def main() -> None:
    """Entry point: run the app, printing a ``ReidkitError`` as one line instead of a traceback."""
    try:
        app(standalone_mode=False)
    except ReidkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors arrive here when standalone_mode is off
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
