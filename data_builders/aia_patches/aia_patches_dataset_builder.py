"""aia_patches: 128x128 multi-channel SDO/AIA patches, normalised per channel, with their metadata.

Configs
  synthetic (default): `solarjax.data.aia_synthetic` AIA-like patches, ``num_examples`` (default
    20,000) of the synthetic set ``seed`` (default 23).
  fits: AIA level-1 FITS files from ``manual_dir`` (a JSOC or VSO download, any file names), grouped
    by T_OBS into observations of the config's channels.
Both hold the channels (171, 193, 211); a `AIAPatchesConfig` of another name chooses others
(e.g. ``AIAPatchesConfig(name="fits_171", source="fits", wavelengths=(171,))``), and its patch
layout (``overlap``, ``downsample_factor``, ``min_mu``/``max_mu``).

fits: each observation is prepared with `solarjax.data.aia_prep` (DN/s, degradation correction,
registration to 0.6 arcsec/px x binning, north up, Sun centred, optional downsampling), channels
stacked on one grid, cut into a centred grid of 128x128 patches (``overlap`` pixels shared by
neighbours) and filtered by the mu of the patch centre. Files are grouped greedily in T_OBS order:
an observation starts at the earliest unused file and takes, per channel, the first file within
``time_tolerance_s``; a group that lacks a channel is left out (listed in the build log).

Features (the AIA data contract): ``image`` float32 [128, 128, C] (`aia_prep.normalise`: asinh
stretch per channel, in [0, 1]), ``id``, ``t_obs`` (ISO 8601 UTC), ``wavelengths`` int32 [C],
``bbox`` int32 [4] (row0, row1, col0, col1 in the registered grid, end exclusive; -1 for synthetic
patches), ``hpc_x``, ``hpc_y`` (arcsec), ``mu`` (NaN off the disk), ``source``.

Splits: fits by the UTC day of the observation (``u = sha256("AIA<YYYY-MM-DD>")`` as a fraction in
[0, 1) against 0.8 / 0.9: a day is never split, and its split never depends on other files);
synthetic by contiguous index ranges (as sharp_patches).

Build log: ``build_log.json`` in the dataset directory (also `DatasetInfo.metadata`) lists
``failures`` (files or observations that could not be used: path, reason), ``ignored`` files (not
FITS file names, channels the config does not use, files of incomplete observations), and
``degradation`` ({"applied": bool, "table": the correction table's source or null}). Each failure
is also logged as a warning and the build goes on (a split whose every observation fails cannot be
written: TFDS then stops with "No examples were yielded").
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from astropy.table import Table
from astropy.time import Time

from data_builders import common
from data_builders.common import PATCH_SIZE
from solarjax.data import aia_prep, aia_synthetic

DEFAULT_WAVELENGTHS = (171, 193, 211)
"""Channels of the predefined configs, Angstrom."""

SYNTHETIC_CHUNK = 256
"""Synthetic patches generated per call."""

FITS_SUFFIXES = (".fits", ".fts", ".fit")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The `fits` config reads AIA level-1 FITS files (any names, subfolders allowed), for example a JSOC
export of `aia.lev1_euv_12s` made with `solarjax.data.aia`, or files fetched with sunpy's Fido.
Files are grouped by T_OBS into observations holding every channel of the config. Build with

    build("fits", data_dir, manual_dir=<manual_dir>)

The degradation correction needs aiapy's correction table (downloaded from SSW, or a local
aia_V*_response_table.txt passed as correction_table=); offline, pass degradation="skip".
"""


@dataclasses.dataclass
class AIAPatchesConfig(common.PatchesConfig):
    """An `aia_patches` config: the fields of `common.PatchesConfig` (``num_examples`` of fits: at
    most this many observations, the earliest) and the channels and patch layout.

    Attributes:
      wavelengths: channels in stacking order, Angstrom.
      overlap: fits: pixels shared by neighbouring grid patches (0 <= overlap < 128).
      downsample_factor: fits: integer block-mean factor after registration.
      min_mu, max_mu: fits: keep patches whose centre mu lies in [min_mu, max_mu] (None: no bound;
        an off-disk centre fails every bound).
      time_tolerance_s: fits: largest T_OBS spread among the channels of one observation, s.
    """

    wavelengths: tuple[int, ...] = DEFAULT_WAVELENGTHS
    overlap: int = 0
    downsample_factor: int = 1
    min_mu: float | None = None
    max_mu: float | None = None
    time_tolerance_s: float = aia_prep.DEFAULT_TIME_TOLERANCE_S


class BuildLog(common.BuildLog):
    """`common.BuildLog` with ``degradation`` ({"applied": bool, "table": str or None})."""

    def __init__(self):
        super().__init__(degradation={"applied": False, "table": None})


@dataclasses.dataclass(frozen=True)
class _ObservationFiles:
    """The files of one observation, in the config's channel order, and its time."""

    paths: tuple[pathlib.Path, ...]
    t_obs: Time


def day_split(day: str) -> str:
    """The split of a UTC day 'YYYY-MM-DD': `common.hash_split` of 'AIA<day>'."""
    return common.hash_split(f"AIA{day}")


def group_by_time(
    files: list[tuple[pathlib.Path, int, Time]], wavelengths: tuple[int, ...], tolerance_s: float
) -> tuple[list[_ObservationFiles], list[tuple[pathlib.Path, str]]]:
    """Greedy grouping of (path, wavelength, T_OBS) into observations of every channel.

    Returns:
      observations in time order (paths in the order of ``wavelengths``), and (path, reason) of the
      files left in incomplete groups.
    """
    pending = sorted(files, key=lambda f: (f[2].unix, str(f[0])))
    observations, left_out = [], []
    while pending:
        start = pending[0][2]
        group: dict[int, tuple[pathlib.Path, Time]] = {}
        rest = []
        for path, wavelength, t_obs in pending:
            if wavelength not in group and (t_obs - start).sec <= tolerance_s:
                group[wavelength] = (path, t_obs)
            else:
                rest.append((path, wavelength, t_obs))
        pending = rest
        missing = [w for w in wavelengths if w not in group]
        if missing:
            reason = (
                f"incomplete observation at {start.isot}: no {', '.join(map(str, missing))} A within {tolerance_s} s"
            )
            left_out.extend((path, reason) for path, _ in group.values())
        else:
            observations.append(
                _ObservationFiles(paths=tuple(group[w][0] for w in wavelengths), t_obs=group[wavelengths[0]][1])
            )
    return observations, left_out


def _features(num_channels: int) -> tfds.features.FeaturesDict:
    """Feature spec; images as raw bytes (fast to write, see sharp_patches)."""
    scalar, tensor, text = tfds.features.Scalar, tfds.features.Tensor, tfds.features.Text
    return tfds.features.FeaturesDict(
        {
            "image": tensor(
                shape=(PATCH_SIZE, PATCH_SIZE, num_channels),
                dtype=np.float32,
                encoding=tfds.features.Encoding.BYTES,
                doc="aia_prep.normalise of DN/s per channel, in [0, 1]",
            ),
            "id": text(doc="unique patch id"),
            "t_obs": text(doc="observation time (T_OBS of the first channel), ISO 8601 UTC"),
            "wavelengths": tensor(shape=(num_channels,), dtype=np.int32, doc="channels, Angstrom"),
            "bbox": tensor(
                shape=(4,),
                dtype=np.int32,
                doc="(row0, row1, col0, col1) in the registered grid, end exclusive; -1: synthetic",
            ),
            "hpc_x": scalar(dtype=np.float32, doc="helioprojective longitude of the patch centre, arcsec"),
            "hpc_y": scalar(dtype=np.float32, doc="helioprojective latitude of the patch centre, arcsec"),
            "mu": scalar(dtype=np.float32, doc="cosine of the heliocentric angle at the patch centre; NaN off disk"),
            "source": text(doc="the channels' file names (fits) or aia_synthetic[<seed>][<index>], ';'-joined"),
        }
    )


class Builder(common.PatchesBuilder):
    """Multi-channel AIA patches, synthetic (default) or from level-1 FITS files, as array_record."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Synthetic frames follow their region: each frame's latitude, longitude (moving with solar "
        "rotation) and time come from the evolving sharp_patches region.",
    }
    BUILDER_CONFIGS = [
        AIAPatchesConfig(
            name="synthetic",
            source="synthetic",
            num_examples=20_000,
            description="Synthetic AIA-like patches (solarjax.data.aia_synthetic), 171/193/211 A.",
        ),
        AIAPatchesConfig(
            name="fits",
            source="fits",
            description="AIA level-1 FITS files from manual_dir, 171/193/211 A, split by day.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "synthetic"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    MANUAL_DIR_HOLDS = "a folder of AIA level-1 FITS files"

    def __init__(
        self,
        *,
        num_examples: int | None = None,
        degradation: str = "apply",
        correction_table: str | os.PathLike | Table = "SSW",
        **kwargs,
    ):
        """Args:
        num_examples: overrides the config's.
        degradation: fits: 'apply' (the build stops with `aia_prep.DegradationUnavailableError`
          when the correction table cannot be loaded) or 'skip'.
        correction_table: see `aia_prep.load_correction_table`.
        **kwargs: as `tfds.core.GeneratorBasedBuilder`.
        """
        super().__init__(num_examples=num_examples, **kwargs)
        if degradation not in ("apply", "skip"):
            raise ValueError(f"degradation must be 'apply' or 'skip', got {degradation!r}")
        self._degradation = degradation
        self._correction_table = correction_table
        self._table: Table | None = None

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_features(len(self.builder_config.wavelengths)),
            homepage="https://sdo.gsfc.nasa.gov/data/",
            metadata=BuildLog(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        if self.builder_config.source == "fits":
            self._table = self._degradation_table()  # before planning: a missing table stops the build first
        return super()._split_generators(dl_manager)

    def _generate_examples(self, items: range | list[_ObservationFiles]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields (key, example) for a synthetic index range or a list of observations."""
        if self.builder_config.source == "fits":
            return fits_examples(items, self._fail, config=self.builder_config, table=self._table)
        return self._synthetic_examples(items)

    def _fits_example_fn(self) -> common.ExampleFn:
        return functools.partial(fits_examples, config=self.builder_config, table=self._table)

    # ------------------------------------------------------------------------------- synthetic
    def _synthetic_examples(self, indices: range) -> Iterator[tuple[int, dict[str, Any]]]:
        config = self.builder_config
        for start in range(indices.start, indices.stop, SYNTHETIC_CHUNK):
            batch = aia_synthetic.generate(
                min(SYNTHETIC_CHUNK, indices.stop - start), config.seed, config.wavelengths, start=start
            )
            images = aia_prep.normalise_channels(np.asarray(batch.images, np.float32), config.wavelengths)
            for i in range(len(images)):
                record = f"aia_synthetic[{config.seed}][{start + i}]"
                yield (
                    start + i,
                    {
                        "image": images[i],
                        "id": record,
                        "t_obs": aia_prep.iso_utc(Time(str(batch.t_obs[i]).rstrip("Z"), scale="utc")),
                        "wavelengths": np.asarray(config.wavelengths, np.int32),
                        "bbox": np.full(4, -1, np.int32),
                        "hpc_x": np.float32(batch.hpc_x[i]),
                        "hpc_y": np.float32(batch.hpc_y[i]),
                        "mu": np.float32(batch.mu[i]),
                        "source": record,
                    },
                )

    # ------------------------------------------------------------------------------------ fits
    def _degradation_table(self) -> Table | None:
        """The correction table (loaded once), or None for degradation='skip'; recorded in the log."""
        if self._degradation == "skip":
            return None
        table = aia_prep.load_correction_table(self._correction_table)
        source = self._correction_table
        self.info.metadata["degradation"] = {
            "applied": True,
            "table": "<astropy Table>" if isinstance(source, Table) else os.fspath(source),
        }
        return table

    def _plan_fits(self, manual_dir: pathlib.Path) -> dict[str, list[_ObservationFiles]]:
        """Groups the manual dir's files into observations per split; logs bad and ignored files."""
        config = self.builder_config
        log = self.info.metadata
        files = []
        for path in common.manual_dir_files(manual_dir):
            if path.suffix.lower() not in FITS_SUFFIXES:
                self._ignore(path, f"not a FITS file name (*{'/*'.join(FITS_SUFFIXES)})")
                continue
            try:
                wavelength, t_obs = aia_prep.read_aia_channel_and_time(path)
            except aia_prep.AIAReadError as error:
                self._fail(path, error.reason)
                continue
            if wavelength not in config.wavelengths:
                self._ignore(path, f"channel {wavelength} A not in {config.wavelengths}")
                continue
            files.append((path, wavelength, t_obs))
        observations, left_out = group_by_time(files, tuple(config.wavelengths), config.time_tolerance_s)
        for path, reason in left_out:
            self._ignore(path, reason)
        observations = observations[: self._num_examples]
        if not observations:
            raise FileNotFoundError(
                f"{manual_dir}: no complete observation of {config.wavelengths} A among the AIA files "
                f"({len(log['failures'])} broken, {len(log['ignored'])} ignored)\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        return common.group_by_split(observations, lambda observation: day_split(observation.t_obs.utc.isot[:10]))


def fits_examples(
    observations: list[_ObservationFiles],
    fail: common.FailFn,
    *,
    config: AIAPatchesConfig,
    table: Table | None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(patch id, example) of each observation's patches; ``fail(path, reason)`` gets the files and
    observations that cannot be used. Module-level, so Beam can ship it (with a partial) to its workers."""
    for files in observations:
        patches = _observation_patches(files, table, config, fail)
        for patch in patches:
            yield (
                aia_prep.patch_id(patch),
                {
                    "image": aia_prep.normalise_channels(patch.image, config.wavelengths),
                    "id": aia_prep.patch_id(patch),
                    "t_obs": patch.t_obs,
                    "wavelengths": patch.wavelengths,
                    "bbox": patch.bbox,
                    "hpc_x": np.float32(patch.hpc_x),
                    "hpc_y": np.float32(patch.hpc_y),
                    "mu": np.float32(patch.mu),
                    "source": patch.source,
                },
            )


def _observation_patches(
    files: _ObservationFiles,
    table: Table | None,
    config: AIAPatchesConfig,
    fail: common.FailFn,
) -> list[aia_prep.AIAPatch]:
    """The observation's grid patches after the mu filter; [] after logging why when it cannot be used."""
    channels = []
    for path in files.paths:
        try:
            channel = aia_prep.prepare_channel(
                path,
                degradation="skip" if table is None else "apply",
                correction_table=table,
                downsample_factor=config.downsample_factor,
            )
        except aia_prep.AIAReadError as error:
            fail(path, error.reason)
            return []
        except ValueError as error:  # registration of an image sunpy or aiapy cannot handle
            fail(path, f"registration failed: {error}")
            return []
        if channel.quality:
            fail(path, f"QUALITY={channel.quality:#010x}: flagged by the AIA pipeline")
            return []
        channels.append(channel)
    names = ";".join(str(p) for p in files.paths)
    try:
        observation = aia_prep.stack_channels(channels, config.time_tolerance_s)
        boxes = aia_prep.grid_boxes(observation.images.shape[:2], PATCH_SIZE, config.overlap)
    except ValueError as error:
        fail(names, str(error))
        return []
    patches = aia_prep.extract_patches(observation, boxes)
    return aia_prep.select_by_mu(patches, config.min_mu, config.max_mu)


def build(
    config: str | AIAPatchesConfig,
    data_dir: str | os.PathLike,
    manual_dir: str | os.PathLike | None = None,
    num_examples: int | None = None,
    degradation: str = "apply",
    correction_table: str | os.PathLike | Table = "SSW",
    beam_runner: str | None = None,
    beam_options: Any = None,
) -> tfds.core.DatasetInfo:
    """Builds ``aia_patches/<config>`` into ``data_dir``, replacing an earlier build.

    Args:
      config: 'synthetic', 'fits', or an `AIAPatchesConfig` of another name (read it back with
        ``tfds.data_source("aia_patches/<its name>", data_dir=...)``).
      data_dir: TFDS data directory; the dataset lands in ``<data_dir>/aia_patches/<config>/<VERSION>``.
      manual_dir: folder of AIA level-1 FITS files (fits configs).
      num_examples: synthetic: patches in all splits (default 20,000); fits: at most this many observations.
      degradation, correction_table: see `Builder`.
      beam_runner, beam_options: fits: generate through Beam, one observation a task (see
        `common.build_dataset`).

    Returns:
      The built dataset's info: ``info.splits``, ``info.data_dir`` and ``info.metadata`` (the
      `BuildLog`, also in ``<info.data_dir>/build_log.json``).
    """
    return common.build_dataset(
        Builder,
        config,
        data_dir,
        manual_dir,
        beam_runner=beam_runner,
        beam_options=beam_options,
        num_examples=num_examples,
        degradation=degradation,
        correction_table=correction_table,
    )
