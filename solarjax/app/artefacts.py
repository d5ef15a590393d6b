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
A CME search is the output of ``solarjax demo --dataset cme --outdir DIR`` (`load_cme_artefacts`: DIR/gan,
DIR/simsiam, DIR/index/built/index over a `cme_patches` table, DIR/index/built/ranking.json, DIR/tfds).
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
    _require(paths, f" (build the work directory with `solarjax demo --outdir {workdir}`)")
    generator = _loaded(paths, "GAN run", lambda: gan.load(paths["GAN run"]))
    directions = _loaded(paths, "directions", lambda: load_directions(paths["directions"], generator))
    encoder = _loaded(paths, "SimSiam run", lambda: ssl.load(paths["SimSiam run"]))
    index = _loaded(paths, "index", lambda: load_index(paths["index"], expected_fingerprint=encoder.fingerprint))
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


def _checked_dataset(table, dataset: str, build: str) -> None:
    """Raises `ArtefactError` naming the table when it is not a table of ``dataset``."""
    if table.dataset_name != dataset:
        raise ArtefactError(f"{table.path}: a table of {table.dataset_name!r}, not of {dataset!r}: {build}")


def _checked_index(artefacts, dataset: str, label: str, build: str) -> None:
    """Raises `ArtefactError` naming the table when ``artefacts.index`` is not of ``dataset``, holds no row,
    or another encoder than ``artefacts.encoder`` made it (``build``: how to build the right one)."""
    from solarjax.retrieval.table import check_fingerprint

    table = artefacts.index.table
    _checked_dataset(table, dataset, build)
    if artefacts.index.num_rows == 0:
        raise ArtefactError(f"{table.path}: the {label} table holds no row")
    try:
        check_fingerprint(
            f"{label} index over {table.path}", artefacts.index.fingerprint, artefacts.encoder.fingerprint
        )
    except ValueError as error:
        raise ArtefactError(str(error)) from error


def checked_aia_artefacts(artefacts: AiaArtefacts) -> AiaArtefacts:
    """The artefacts, after checking that they belong together (raises `ArtefactError` naming the
    table when the index is not of `aia_patches`, holds no row, or another encoder made it)."""
    _checked_index(artefacts, AIA_DATASET, "AIA", "build it with `solarjax index build --dataset aia_patches`")
    table_wavelengths(artefacts.index.table)
    return artefacts


def _require(paths: dict[str, pathlib.Path], hint: str = "") -> None:
    """Raises `ArtefactError` naming the first of ``paths`` (what -> path) that does not exist."""
    for what, path in paths.items():
        if not path.exists():
            raise ArtefactError(f"{path}: no {what}{hint}")


def _loaded(paths: dict[str, pathlib.Path], what: str, load):
    """``load()``; any failure becomes an `ArtefactError` naming ``paths[what]``."""
    try:
        return load()
    except Exception as error:  # any loader failure stops start-up with the artefact named
        raise ArtefactError(f"{paths[what]}: cannot load the {what}: {error}") from error


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
    _require(paths)
    encoder = _loaded(paths, "AIA SimSiam run", lambda: ssl.load(paths["AIA SimSiam run"]))
    index = _loaded(
        paths, "AIA index", lambda: load_index(paths["AIA index"], expected_fingerprint=encoder.fingerprint)
    )
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


CME_DATASET = "cme_patches"
"""The TFDS dataset a CME index must be built over."""
CME_BUILD = "serve the output of `solarjax demo --dataset cme`"

CME_STEERABLE = ("width_deg", "cpa_deg", "excess")
"""CME quantities with a slider (`solarjax.cme_steering.STEERED` names): angular width, central position
angle and brightness excess."""


@dataclasses.dataclass(frozen=True)
class CmeArtefacts:
    """A CME search: the GAN of CME difference images, the SimSiam encoder, its index over a `cme_patches`
    table, the TFDS data directory of the table's rows and the search's ranking."""

    generator: Any  # solarjax.gan.TrainedGenerator (apply_fn, params, fingerprint, generate, sample_latents)
    encoder: Any  # solarjax.ssl.Encoder
    index: Any  # solarjax.retrieval.Index
    tfds_dir: pathlib.Path
    ranking: Any = None  # solarjax.retrieval.ranking.Ranking; None: SSL ranking


def is_cme_workdir(workdir: str | os.PathLike) -> bool:
    """Whether ``workdir`` was written by ``solarjax demo --dataset cme`` (its metrics name the CME family,
    or it holds the CME demo's index at index/built/index)."""
    workdir = pathlib.Path(workdir)
    try:
        family = str(json.loads((workdir / "metrics.json").read_text()).get("dataset_family", ""))
    except (OSError, ValueError, AttributeError):
        family = ""
    return family.startswith("cme") or (workdir / "index" / "built" / "index").exists()


def checked_cme_artefacts(artefacts: CmeArtefacts) -> CmeArtefacts:
    """The artefacts, after checking that they belong together (raises `ArtefactError` naming the table
    when the index is not of `cme_patches`, holds no row, or another encoder made it)."""
    _checked_index(artefacts, CME_DATASET, "CME", CME_BUILD)
    return artefacts


def load_cme_artefacts(workdir: str | os.PathLike) -> CmeArtefacts:
    """Loads the output of ``solarjax demo --dataset cme --outdir DIR``: DIR/gan, DIR/simsiam,
    DIR/index/built/index (over DIR/index/built/table), DIR/index/built/ranking.json (optional) and
    DIR/tfds. The index is checked to be of `cme_patches` before any model is loaded.

    Raises:
      ArtefactError: a path is missing, an artefact cannot be loaded, or they do not belong together.
    """
    from solarjax import gan, ssl
    from solarjax.retrieval import load_index
    from solarjax.retrieval import ranking as ranking_lib

    workdir = pathlib.Path(workdir)
    built = workdir / "index" / "built"
    paths = {
        "CME index": built / "index",
        "CME GAN run": workdir / "gan",
        "CME SimSiam run": workdir / "simsiam",
        "CME TFDS data": workdir / "tfds",
    }
    _require(paths, f" (build the work directory with `solarjax demo --dataset cme --outdir {workdir}`)")
    index = _loaded(paths, "CME index", lambda: load_index(paths["CME index"]))
    _checked_dataset(index.table, CME_DATASET, CME_BUILD)
    encoder = _loaded(paths, "CME SimSiam run", lambda: ssl.load(paths["CME SimSiam run"]))
    generator = _loaded(paths, "CME GAN run", lambda: gan.load(paths["CME GAN run"]))
    try:
        ranking = ranking_lib.load_ranking(built)
    except ValueError as error:
        raise ArtefactError(str(error)) from error
    return checked_cme_artefacts(CmeArtefacts(generator, encoder, index, paths["CME TFDS data"], ranking))
