"""`lowrank-edge data SPEC`: read (or fetch) a dataset and print its splits and preprocessing."""

from __future__ import annotations

import click

from lowrank_edge.cli.options import DataSource, data_read_options, seed_option
from lowrank_edge.data import SPEC_HELP


@click.command("data", help=f"Read SPEC and show its source, splits, input values and classes. "
               f"SPEC is {SPEC_HELP}.")  # fmt: skip
@click.argument("spec", metavar="SPEC")
@data_read_options(None)
@seed_option("Seed of the train/validation split.")
def data(source: DataSource, seed: int) -> None:
    dataset = source.load(seed)
    click.echo(f"dataset {dataset.name}: {dataset.num_classes} classes")
    click.echo(f"source  {dataset.source}")
    click.echo(dataset.summary())
    click.echo(f"labels  {' '.join(dataset.labels)}")


COMMANDS = [data]
