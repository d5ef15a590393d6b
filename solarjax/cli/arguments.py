"""argparse types and defaults shared by the commands."""

from __future__ import annotations

import argparse
import os


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def unit_fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def default_data_dir() -> str:
    """The TFDS data directory: $SOLARJAX_DATA_DIR, else ~/tensorflow_datasets."""
    return os.environ.get("SOLARJAX_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def add_data_dir_argument(
    parser: argparse.ArgumentParser, help_text: str = "TFDS data directory", flag: str = "--data-dir"
) -> None:
    """`flag` (default: `default_data_dir`), its help `help_text` followed by the default."""
    parser.add_argument(
        flag,
        default=default_data_dir(),
        help=f"{help_text} (default: $SOLARJAX_DATA_DIR or ~/tensorflow_datasets)",
    )


DATASETS = ("sharp_patches", "aia_patches", "cme_patches")
BUILDER_CONFIGS = ("synthetic", "fits", "files", "files_c3")


def add_dataset_arguments(parser: argparse.ArgumentParser, *, dataset_help: str, config_help: str) -> None:
    """``--dataset`` (one of `DATASETS`, default sharp_patches) and ``--config`` (one of `BUILDER_CONFIGS`,
    default synthetic): the TFDS dataset DATASET/CONFIG a command builds or reads."""
    parser.add_argument("--dataset", choices=DATASETS, default="sharp_patches", help=dataset_help)
    parser.add_argument("--config", choices=BUILDER_CONFIGS, default="synthetic", help=config_help)
