"""`lowrank-edge data`: fetch or read a dataset, cache it, and print its splits."""

from __future__ import annotations

import click

from lowrank_edge.cli.options import seed_option


@click.command("data")
@click.argument("name", type=click.Choice(["mnist", "emnist"]))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Folder with the dataset files (required for emnist, e.g. ../shared/data/emnist47; "
    "for mnist: IDX files or Kaggle train.csv instead of the download).",
)
@seed_option("Seed of the train/validation split.")
def data(name: str, data_dir: str | None, seed: int) -> None:
    """Fetch (MNIST) or read (EMNIST) a dataset and show where it is and its split shapes."""
    from lowrank_edge.data import load_dataset

    dataset = load_dataset(name, data_dir, seed=seed)
    click.echo(f"dataset {dataset.name}: {dataset.num_classes} classes")
    click.echo(f"source  {dataset.source}")
    click.echo(dataset.summary())
    click.echo(f"labels  {' '.join(dataset.labels)}")


COMMANDS = [data]
