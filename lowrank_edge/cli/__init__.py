"""The `lowrank-edge` command line.

Each sub-command lives in its own module and imports TensorFlow only inside the
command body, so `lowrank-edge bench` works on a device without TensorFlow.
User mistakes (LowrankEdgeError) print one `error:` line and exit with status 1.
"""

from __future__ import annotations

import sys

import click

from lowrank_edge import __version__
from lowrank_edge.errors import LowrankEdgeError


class _Group(click.Group):
    """A click group that turns LowrankEdgeError into one clear line and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LowrankEdgeError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lowrank-edge")
def main() -> None:
    """Compress Keras models with SVD low-rank factorisation, export and benchmark them."""


def _register() -> None:
    """Attach every sub-command module's commands to `main` (none imports TensorFlow)."""
    from lowrank_edge.cli import (
        bench_cmd,
        data_cmd,
        export_cmd,
        latency_cmd,
        model_cmd,
        ranks_cmd,
        recommend_cmd,
    )

    for module in (
        data_cmd,
        model_cmd,
        ranks_cmd,
        export_cmd,
        bench_cmd,
        recommend_cmd,
        latency_cmd,
    ):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
