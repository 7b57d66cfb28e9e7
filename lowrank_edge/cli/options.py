"""Click options shared by several commands, declared once so their names and help agree."""

from __future__ import annotations

from pathlib import Path

import click

DATASETS = ("mnist", "emnist")


def dataset_option(help: str = "Dataset to train/evaluate on (emnist needs --data-dir)."):
    """`--dataset mnist|emnist`."""
    return click.option("--dataset", type=click.Choice(DATASETS), default=None, help=help)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with the user's data files (EMNIST IDX/CSV, MNIST IDX or Kaggle train.csv).",
)


def overwrite_option(help: str = "Replace existing output files instead of refusing."):
    """`--overwrite`: outputs are never replaced without it."""
    return click.option("--overwrite", is_flag=True, help=help)
