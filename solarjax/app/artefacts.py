"""The trained pieces the app serves, loaded once at start-up and checked to belong together.

A work directory written by `solarjax demo` holds every SHARP artefact::

    DIR/gan                      GAN run (`solarjax.gan.load`)
    DIR/directions/directions    SVM normals of the generator (`solarjax.steering.load_directions`)
    DIR/simsiam                  SimSiam run (`solarjax.ssl.load`)
    DIR/index/index              search index over DIR/index/table (`solarjax.retrieval.load_index`)
    DIR/index/ranking.json       the ranking chosen on validation (optional)
    DIR/tfds                     the TFDS data the table rows point to (their images)

An AIA search is an index of an `aia_patches` table (``solarjax index build --dataset aia_patches --out
OUT``: OUT/index, OUT/table), the SimSiam run that embedded it and the TFDS data directory of its rows.
A mismatch (directions of another generator, an index built with another encoder) is refused with an
`ArtefactError` naming the artefact.
"""

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

STEERABLE = ("tuf", "psep", "r_value", "tilt")
"""Quantities with a slider: flux, polarity separation, complexity (Schrijver R) and tilt; the directions
must hold each."""

AIA_DATASET = "aia_patches"
"""The TFDS dataset an AIA index must be built over."""


class ArtefactError(RuntimeError):
    """A work directory lacks an artefact, or its artefacts do not belong together."""


@dataclasses.dataclass(frozen=True)
class Artefacts:
    """The trained pieces the app serves, checked to belong together."""

    generator: Any  # solarjax.gan.TrainedGenerator
    directions: Any  # solarjax.steering.Directions
    encoder: Any  # solarjax.ssl.Encoder
    index: Any  # solarjax.retrieval.Index
    tfds_dir: pathlib.Path
    steering_report: dict | None = None  # DIR/directions/evaluation/report.json (families compared), if any


def load_artefacts(workdir: str | os.PathLike) -> Artefacts:
    """Loads the GAN, directions, encoder and index of a demo work directory.

    Raises:
      ArtefactError: an artefact is missing, unreadable, or made for another model; the message
        names the artefact's path and the problem.
    """
    from solarjax import gan, ssl
    from solarjax.retrieval import load_index
    from solarjax.steering import load_directions

    workdir = pathlib.Path(workdir)
    paths = {
        "GAN run": workdir / "gan",
        "directions": workdir / "directions" / "directions",
        "SimSiam run": workdir / "simsiam",
        "index": workdir / "index" / "index",
        "TFDS data": workdir / "tfds",
    }
    for what, path in paths.items():
        if not path.exists():
            raise ArtefactError(f"{path}: no {what} (build the work directory with `solarjax demo --outdir {workdir}`)")

    def loaded(what, load):
        try:
            return load()
        except Exception as error:  # any loader failure stops start-up with the artefact named
            raise ArtefactError(f"{paths[what]}: cannot load the {what}: {error}") from error

    generator = loaded("GAN run", lambda: gan.load(paths["GAN run"]))
    directions = loaded("directions", lambda: load_directions(paths["directions"], generator))
    encoder = loaded("SimSiam run", lambda: ssl.load(paths["SimSiam run"]))
    index = loaded("index", lambda: load_index(paths["index"], expected_fingerprint=encoder.fingerprint))
    missing = [name for name in STEERABLE if name not in directions.names]
    if missing:
        raise ArtefactError(f"{paths['directions']}: no direction for {missing}; it has {list(directions.names)}")
    return Artefacts(
        generator,
        directions,
        encoder,
        index,
        paths["TFDS data"],
        _steering_report(workdir / "directions" / "evaluation" / "report.json"),
    )


def _steering_report(path: pathlib.Path) -> dict | None:
    """The steering evaluation's choice and figures: {'best_method', 'families': method -> name -> figures}."""
    try:
        report = json.loads(path.read_text())
        results = report["families"]["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {
        "best_method": report.get("best_method"),
        "families": {
            method: {
                name: {
                    "monotonicity": row["monotonicity"],
                    "max_leakage": row.get("max_leakage"),
                    "frechet_ratio": row.get("realism", {}).get("frechet_ratio"),
                }
                for name, row in rows.items()
            }
            for method, rows in results.items()
        },
    }


@dataclasses.dataclass(frozen=True)
class AiaArtefacts:
    """An AIA search: a SimSiam encoder of C channels, its index over an `aia_patches` table, and
    the TFDS data directory holding the table rows' patches."""

    encoder: Any  # solarjax.ssl.Encoder (or any object with `embed` and `fingerprint`)
    index: Any  # solarjax.retrieval.Index
    tfds_dir: pathlib.Path

    @property
    def wavelengths(self) -> tuple[int, ...]:
        """The table's channels, Angstrom, in the order of the images' last axis."""
        return table_wavelengths(self.index.table)


def table_wavelengths(table) -> tuple[int, ...]:
    """The one channel list of an `aia_patches` table ('171,193,211' in every row -> (171, 193, 211)).

    Raises:
      ArtefactError: the table is empty, or its rows hold different channel lists.
    """
    values = np.unique(table.column("wavelengths"))
    if len(values) != 1:
        found = [bytes(v).decode() for v in values[:4]]
        raise ArtefactError(f"{table.path}: rows hold {len(values)} channel lists {found}; one list expected")
    text = bytes(values[0]).decode()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as error:
        raise ArtefactError(f"{table.path}: wavelengths {text!r} are not comma-separated integers") from error


def checked_aia_artefacts(artefacts: AiaArtefacts) -> AiaArtefacts:
    """The artefacts, after checking that they belong together (raises `ArtefactError` naming the
    table when the index is not of `aia_patches`, holds no row, or another encoder made it)."""
    from solarjax.retrieval.table import check_fingerprint

    table = artefacts.index.table
    if table.dataset_name != AIA_DATASET:
        raise ArtefactError(
            f"{table.path}: a table of {table.dataset_name!r}, not of {AIA_DATASET!r}: "
            "build it with `solarjax index build --dataset aia_patches`"
        )
    if artefacts.index.num_rows == 0:
        raise ArtefactError(f"{table.path}: the AIA table holds no row")
    try:
        check_fingerprint(f"AIA index over {table.path}", artefacts.index.fingerprint, artefacts.encoder.fingerprint)
    except ValueError as error:
        raise ArtefactError(str(error)) from error
    table_wavelengths(table)
    return artefacts


def load_aia_artefacts(
    index_dir: str | os.PathLike, ssl_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> AiaArtefacts:
    """Loads an AIA search: ``index_dir`` written by ``solarjax index build --dataset aia_patches``
    (index_dir/index, index_dir/table), the SimSiam run ``ssl_dir`` that embedded it, and the TFDS
    data directory ``data_dir`` of the table's rows.

    Raises:
      ArtefactError: a path is missing, an artefact cannot be loaded, or they do not belong together.
    """
    from solarjax import ssl
    from solarjax.retrieval import load_index

    paths = {
        "AIA index": pathlib.Path(index_dir) / "index",
        "AIA SimSiam run": pathlib.Path(ssl_dir),
        "AIA TFDS data": pathlib.Path(data_dir).expanduser(),
    }
    for what, path in paths.items():
        if not path.exists():
            raise ArtefactError(f"{path}: no {what}")
    try:
        encoder = ssl.load(paths["AIA SimSiam run"])
    except Exception as error:  # any loader failure stops start-up with the artefact named
        raise ArtefactError(f"{paths['AIA SimSiam run']}: cannot load the AIA SimSiam run: {error}") from error
    try:
        index = load_index(paths["AIA index"], expected_fingerprint=encoder.fingerprint)
    except Exception as error:
        raise ArtefactError(f"{paths['AIA index']}: cannot load the AIA index: {error}") from error
    return checked_aia_artefacts(AiaArtefacts(encoder, index, paths["AIA TFDS data"]))


def load_search_ranking(workdir: str | os.PathLike):
    """The ranking of the SHARP search: ``DIR/index/ranking.json`` (weight and default mode chosen on
    the validation split by the demo), or SSL ranking when absent.

    Raises:
      ArtefactError: an unreadable ranking file, named.
    """
    from solarjax.retrieval import ranking as ranking_lib

    try:
        return ranking_lib.load_ranking(pathlib.Path(workdir) / "index")
    except ValueError as error:
        raise ArtefactError(str(error)) from error
