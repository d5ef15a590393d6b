"""cme_patches: 128x128 CME difference images of a LASCO-like coronagraph with their CME quantities.

Configs
  synthetic (default): `solarjax.data.cme_synthetic` CMEs (C2 field of view, base differences),
    ``num_examples`` (default 5,000) of the synthetic set ``seed`` (default 23), with their truth.
  files: LASCO C2 files from ``manual_dir`` (level 0.5 / 1 FITS or Helioviewer JPEG2000, any names,
    subfolders allowed), running differences.
  files_c3: the same for LASCO C3.
A `CmePatchesConfig` of another name chooses the detector, the difference kind ('running' or 'base') and
how frames are grouped into sequences.

files: frames of the config's detector are grouped into sequences (`group_into_sequences`): time order,
one image shape and unit per sequence, a new sequence after a gap longer than ``max_gap_minutes`` or
once a sequence spans ``sequence_hours`` (so an event is not split, and a long archive is not one
sequence). Each sequence of N >= 2 frames gives N - 1 patches (`solarjax.data.cme_prep.sequence_patches`:
the difference over the reference's radial background, on a grid with the Sun at the centre, north up,
east left, half side the detector's field stop; and its polar view).

Features (the CME data contract): ``image`` float32 [128, 128, 1] (relative difference in [-1, 1]),
``polar`` float32 [64, 180] (height x position angle, `cme_prep.POLAR_SHAPE`), ``id``, ``event``
(the synthetic CME or the sequence: what must stay in one split), ``t_obs`` and ``reference_t_obs``
(ISO 8601 UTC; '' for synthetic), ``detector``, ``kind``, ``rsun_per_pixel``, ``source``, the measured
``cpa_deg``, ``width_deg``, ``front_height_rsun``, ``excess`` (`solarjax.cme_physics.quantities` on the
detector's grid; NaN where no pixel passes the threshold) and the synthetic truth ``true_cpa_deg``,
``true_width_deg`` (360: halo), ``true_front_height_rsun``, ``true_excess`` (NaN for files) and ``true_rare``
(1: a planted double CME of `cme_synthetic`, 0: not, -1: unknown, files).

Splits: synthetic by contiguous index ranges (one CME per example: every event in one split); files by
the sequence (``u = sha256("LASCO<detector><ISO time of its first frame>")`` against 0.8 / 0.9).

Build log: ``build_log.json`` lists ``failures`` (files that cannot be read: path, reason) and
``ignored`` files (not image file names, other detectors, repeated times, lone frames).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.common import PATCH_SIZE
from solarjax import cme_physics
from solarjax.data import cme_prep, cme_synthetic, lasco

SYNTHETIC_CHUNK = 256
"""Synthetic patches generated (and measured) per call."""

FILE_SUFFIXES = (".fts", ".fits", ".fit", ".jp2")

MEASURED = cme_physics.QUANTITY_NAMES
TRUTH = tuple(f"true_{name}" for name in MEASURED)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The `files` (C2) and `files_c3` configs read LASCO level 0.5 / level 1 FITS files or Helioviewer
JPEG2000 files (any names, subfolders allowed), for example those fetched with
`solarjax data download-lasco <manual_dir> --detector C2 --start ... --end ...`. Frames are grouped into
time sequences and turned into running differences. Build with

    build("files", data_dir, manual_dir=<manual_dir>)
"""


@dataclasses.dataclass
class CmePatchesConfig(common.PatchesConfig):
    """A `cme_patches` config: the fields of `common.PatchesConfig` (``num_examples`` of files: at most this
    many sequences, the earliest) and how files become patches.

    Attributes:
      detector: files: 'C2' or 'C3' (frames of the other detector are ignored); fixes the grid geometry.
      difference: files: 'running' or 'base'.
      max_gap_minutes: files: a longer gap between frames starts a new sequence.
      sequence_hours: files: a sequence that spans this long ends (the next frame starts a new one).
    """

    detector: str = "C2"
    difference: str = "running"
    max_gap_minutes: float = 120.0
    sequence_hours: float = 6.0


class BuildLog(common.BuildLog):
    """`common.BuildLog` with ``sequences`` (the number of frame sequences the files formed)."""

    def __init__(self):
        super().__init__(sequences=0)


@dataclasses.dataclass(frozen=True)
class _Frame:
    path: pathlib.Path
    date_obs: datetime.datetime
    group: tuple  # (shape, units): frames of one sequence share them


def sequence_split(detector: str, first: datetime.datetime) -> str:
    """The split of a sequence: `common.hash_split` of 'LASCO<detector><ISO time of its first frame>'."""
    return common.hash_split(f"LASCO{detector}{first.isoformat()}")


def group_into_sequences(
    frames: list[_Frame], max_gap_s: float, max_span_s: float
) -> tuple[list[list[_Frame]], list[tuple[pathlib.Path, str]]]:
    """Time sequences of frames (see the module docstring).

    Returns:
      sequences of >= 2 frames (time order; sequences ordered by their first frame), and (path, reason)
      of the frames left out (a repeated time, a sequence of one frame).
    """
    sequences, left_out = [], []
    by_group: dict[tuple, list[_Frame]] = {}
    for frame in sorted(frames, key=lambda f: (f.date_obs, str(f.path))):
        by_group.setdefault(frame.group, []).append(frame)
    for group_frames in by_group.values():
        current: list[_Frame] = []
        for frame in group_frames:
            if current and frame.date_obs == current[-1].date_obs:
                left_out.append((frame.path, f"same DATE-OBS {frame.date_obs.isoformat()} as {current[-1].path.name}"))
                continue
            if current and (
                (frame.date_obs - current[-1].date_obs).total_seconds() > max_gap_s
                or (frame.date_obs - current[0].date_obs).total_seconds() > max_span_s
            ):
                sequences.append(current)
                current = []
            current.append(frame)
        if current:
            sequences.append(current)
    kept = []
    for sequence in sequences:
        if len(sequence) < 2:
            left_out.append(
                (
                    sequence[0].path,
                    f"lone frame at {sequence[0].date_obs.isoformat()}: a difference "
                    "needs a second frame of the same size and units within the gap",
                )
            )
        else:
            kept.append(sequence)
    return sorted(kept, key=lambda s: (s[0].date_obs, str(s[0].path))), left_out


def _features() -> tfds.features.FeaturesDict:
    """Feature spec; images as raw bytes (fast to write, see sharp_patches)."""
    scalar, tensor, text = tfds.features.Scalar, tfds.features.Tensor, tfds.features.Text
    features = {
        "image": tensor(
            shape=(PATCH_SIZE, PATCH_SIZE, 1),
            dtype=np.float32,
            encoding=tfds.features.Encoding.BYTES,
            doc="relative difference in [-1, 1]; Sun at the centre, north up (row 0), east left",
        ),
        "polar": tensor(
            shape=cme_prep.POLAR_SHAPE,
            dtype=np.float32,
            encoding=tfds.features.Encoding.BYTES,
            doc="relative difference on (height from occulter to field stop, PA (i + 0.5) * 2 deg)",
        ),
        "id": text(doc="unique patch id"),
        "event": text(doc="the synthetic CME or the frame sequence (never split)"),
        "t_obs": text(doc="time of the later frame, ISO 8601 UTC; '' for synthetic"),
        "reference_t_obs": text(doc="time of the frame subtracted, ISO 8601 UTC; '' for synthetic"),
        "detector": text(doc="'C2' or 'C3' (synthetic: 'C2', its field of view)"),
        "kind": text(doc="'running' or 'base' difference"),
        "rsun_per_pixel": scalar(dtype=np.float32, doc="plate scale of the image grid, Rsun per pixel"),
        "source": text(doc="'reference;later' file names, or cme_synthetic[<seed>][<index>]"),
    }
    for name in MEASURED:
        features[name] = scalar(dtype=np.float32, doc=f"solarjax.cme_physics {name!r} (NaN: no CME pixel)")
    for name in TRUTH:
        features[name] = scalar(dtype=np.float32, doc="synthetic ground truth (NaN for files)")
    features["true_rare"] = scalar(dtype=np.int32, doc="1: a planted rare (double) CME, 0: not, -1: unknown (files)")
    return tfds.features.FeaturesDict(features)


class Builder(common.PatchesBuilder):
    """CME difference patches, synthetic (default) or from LASCO C2/C3 files, as array_record."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Synthetic: a planted 1% of double CMEs; the true_rare feature.",
    }
    BUILDER_CONFIGS = [
        CmePatchesConfig(
            name="synthetic",
            source="synthetic",
            num_examples=5_000,
            description="Synthetic CMEs (solarjax.data.cme_synthetic), C2 field of view, with truth.",
        ),
        CmePatchesConfig(
            name="files",
            source="fits",
            detector="C2",
            description="LASCO C2 FITS/JPEG2000 files from manual_dir, running differences.",
        ),
        CmePatchesConfig(
            name="files_c3",
            source="fits",
            detector="C3",
            description="LASCO C3 FITS/JPEG2000 files from manual_dir, running differences.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "synthetic"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    MANUAL_DIR_HOLDS = "a folder of LASCO FITS or Helioviewer JPEG2000 files"

    def __init__(self, *, num_examples: int | None = None, **kwargs):
        super().__init__(num_examples=num_examples, **kwargs)
        config = self.builder_config
        if config.detector not in cme_physics.GEOMETRIES:
            raise ValueError(f"detector must be one of {sorted(cme_physics.GEOMETRIES)}, got {config.detector!r}")
        if config.difference not in ("running", "base"):
            raise ValueError(f"difference must be 'running' or 'base', got {config.difference!r}")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_features(), homepage="https://lasco-www.nrl.navy.mil/", metadata=BuildLog()
        )

    def _generate_examples(self, items: range | list[list[_Frame]]) -> Iterator[tuple[Any, dict[str, Any]]]:
        if self.builder_config.source == "fits":
            return self._file_examples(items)
        return self._synthetic_examples(items)

    # ------------------------------------------------------------------------------- synthetic
    def _synthetic_examples(self, indices: range) -> Iterator[tuple[int, dict[str, Any]]]:
        seed = self.builder_config.seed
        geometry = cme_physics.C2_GEOMETRY
        for start in range(indices.start, indices.stop, SYNTHETIC_CHUNK):
            batch = cme_synthetic.generate(min(SYNTHETIC_CHUNK, indices.stop - start), seed, start=start)
            measured = _measured(batch.images, geometry)
            polar = cme_prep.grid_polar(batch.images, geometry)
            truth = (batch.cpa_deg, batch.width_deg, batch.front_height_rsun, batch.excess)
            for i in range(len(batch.images)):
                record = f"cme_synthetic[{seed}][{start + i}]"
                yield (
                    start + i,
                    {
                        "image": batch.images[i][..., None],
                        "polar": polar[i],
                        "id": record,
                        "event": record,
                        "t_obs": "",
                        "reference_t_obs": "",
                        "detector": "C2",
                        "kind": "base",
                        "rsun_per_pixel": np.float32(geometry.rsun_per_pixel(PATCH_SIZE)),
                        "source": record,
                        **{name: values[i] for name, values in measured.items()},
                        **{name: np.float32(values[i]) for name, values in zip(TRUTH, truth)},
                        "true_rare": np.int32(batch.rare[i]),
                    },
                )

    # ------------------------------------------------------------------------------------ files
    def _plan_fits(self, manual_dir: pathlib.Path) -> dict[str, list[list[_Frame]]]:
        """Groups the manual dir's frames of the config's detector into sequences per split."""
        config = self.builder_config
        log = self.info.metadata
        frames = []
        for path in common.manual_dir_files(manual_dir):
            if path.suffix.lower() not in FILE_SUFFIXES:
                self._ignore(path, f"not a LASCO file name (*{'/*'.join(FILE_SUFFIXES)})")
                continue
            try:
                image = lasco.read_lasco(path)
            except lasco.LascoReadError as error:
                self._fail(path, error.reason)
                continue
            if image.meta["detector"] != config.detector:
                self._ignore(path, f"detector {image.meta['detector']}: this config reads {config.detector}")
                continue
            frames.append(_Frame(path, image.meta["date_obs"], (image.data.shape, image.meta["units"])))
        sequences, left_out = group_into_sequences(
            frames, 60.0 * config.max_gap_minutes, 3600.0 * config.sequence_hours
        )
        for path, reason in left_out:
            self._ignore(path, reason)
        sequences = sequences[: self._num_examples]
        log["sequences"] = len(sequences)
        if not sequences:
            raise FileNotFoundError(
                f"{manual_dir}: no sequence of two or more LASCO {config.detector} frames "
                f"({len(log['failures'])} broken, {len(log['ignored'])} ignored; the build log lists them)"
            )
        return common.group_by_split(sequences, lambda s: sequence_split(config.detector, s[0].date_obs))

    def _file_examples(self, sequences: list[list[_Frame]]) -> Iterator[tuple[str, dict[str, Any]]]:
        config = self.builder_config
        geometry = cme_physics.GEOMETRIES[config.detector]
        for sequence in sequences:
            images = []
            for frame in sequence:
                try:
                    images.append(lasco.read_lasco(frame.path))
                except lasco.LascoReadError as error:
                    self._fail(frame.path, error.reason)
            if len(images) < 2:
                continue
            event = f"lasco[{config.detector}][{sequence[0].date_obs.isoformat()}]"
            patches = cme_prep.sequence_patches(images, config.difference, geometry, PATCH_SIZE)
            measured = _measured(np.stack([p.image for p in patches]), geometry)
            for i, patch in enumerate(patches):
                key = f"lasco[{patch.detector}][{patch.t_obs.isoformat()}][{patch.kind}]"
                yield (
                    key,
                    {
                        "image": patch.image[..., None],
                        "polar": patch.polar,
                        "id": key,
                        "event": event,
                        "t_obs": patch.t_obs.isoformat(),
                        "reference_t_obs": patch.reference_t_obs.isoformat(),
                        "detector": patch.detector,
                        "kind": patch.kind,
                        "rsun_per_pixel": np.float32(geometry.rsun_per_pixel(PATCH_SIZE)),
                        "source": patch.source,
                        **{name: values[i] for name, values in measured.items()},
                        **{name: np.float32(np.nan) for name in TRUTH},
                        "true_rare": np.int32(-1),
                    },
                )


def _measured(images: np.ndarray, geometry: cme_physics.Geometry) -> dict[str, np.ndarray]:
    """`cme_physics.quantities` of images [N, 128, 128] as float32 numpy arrays."""
    values = cme_physics.quantities(np.asarray(images, np.float32), geometry=geometry)
    return {name: np.asarray(values[name], np.float32) for name in MEASURED}


def build(
    config: str | CmePatchesConfig,
    data_dir: str | os.PathLike,
    manual_dir: str | os.PathLike | None = None,
    num_examples: int | None = None,
) -> tfds.core.DatasetInfo:
    """Builds ``cme_patches/<config>`` into ``data_dir``, replacing an earlier build.

    Args:
      config: 'synthetic', 'files', 'files_c3', or a `CmePatchesConfig` of another name (read it back with
        ``tfds.data_source("cme_patches/<its name>", data_dir=...)``).
      data_dir: TFDS data directory; the dataset lands in ``<data_dir>/cme_patches/<config>/1.1.0``.
      manual_dir: folder of LASCO files (files configs).
      num_examples: synthetic: patches in all splits (default 5,000); files: at most this many sequences.

    Returns:
      The built dataset's info: ``info.splits``, ``info.data_dir`` and ``info.metadata`` (the `BuildLog`).
    """
    return common.build_dataset(Builder, config, data_dir, manual_dir, num_examples=num_examples)
