"""The skeleton shared by the patch dataset builders (`sharp_patches`, `aia_patches`).

Both builders have two sources: ``synthetic`` (a seeded generated set, split into contiguous index
ranges) and ``fits`` (files of a manual dir, split by a sha256 hash of what must stay in one split:
the HARP, or the UTC day). Both write array_record files and a build log. This module holds what
they share; features, configs beyond `PatchesConfig` and example generation stay in each builder.

  `PatchesConfig`: the config fields every builder reads (source, num_examples, seed).
  `PatchesBuilder`: the builder skeleton; a subclass gives `_info`, `_plan_fits` and
    `_generate_examples`, and for Beam builds `_fits_example_fn`.
  `BuildLog`: ``build_log.json``, the dataset's record of failed and ignored input files.
  `hash_split`, `synthetic_split_ranges`, `group_by_split`: the split assignment.
  `build_dataset`: builds one config into a data directory (each builder's ``build`` calls it).
  `beam_pipeline_options`: the Beam options of ``--beam-runner`` builds (`BeamUnavailableError` without Beam).

Beam: a fits build given a ``beam_runner`` generates through TFDS's Beam support. The driver plans
the splits as in a plain build (`_plan_fits`: names, sizes, split assignment); the builder's
`_fits_example_fn` then reads, repairs, preprocesses and scores groups of `BEAM_UNITS_PER_TASK`
input units inside the pipeline; per-file failures leave the workers as a tagged output, are written
beside the shards and merged into the build log. Same examples, keys and splits as a plain build.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import shuffle as tfds_shuffle

PATCH_SIZE = 128
"""Side of the stored patches in pixels."""

SOURCES = ("synthetic", "fits")
"""Where a config's patches come from."""

SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
"""Share of hashed keys (fits) or of indices (synthetic) in each split, in split order."""

BUILD_LOG_NAME = "build_log.json"

IN_MEMORY_SHUFFLE_BYTES = 64 << 30
"""Largest split (serialised bytes) shuffled in memory; TFDS's own 1 GB limit would need TensorFlow."""

BEAM_FAILURES_TAG = "failures"
"""Tagged output of a Beam generation task that carries the {"path", "reason"} of its failed inputs."""

Item = TypeVar("Item")
FailFn = Callable[[Any, str], None]
"""``fail(path, reason)``: records an input that could not be used."""
ExampleFn = Callable[[list, FailFn], Iterator[tuple[Any, dict[str, Any]]]]
"""``examples(units, fail)``: the (key, example) pairs of some `_plan_fits` units; picklable for Beam."""


class BeamUnavailableError(ImportError):
    """A Beam build was asked for where apache-beam is not installed."""


@dataclasses.dataclass
class PatchesConfig(tfds.core.BuilderConfig):
    """The config fields `PatchesBuilder` reads.

    Attributes:
      source: 'synthetic' or 'fits'.
      num_examples: synthetic: patches over all splits; fits: at most this many input units (the
        builder says which: Br files, observations); None: all. The builder's ``num_examples``
        argument overrides it.
      seed: the synthetic set.
    """

    source: str = "synthetic"
    num_examples: int | None = None
    seed: int = 23


class BuildLog(tfds.core.Metadata):
    """What a build did with its input files, saved as `BUILD_LOG_NAME` (indented JSON) in the dataset directory.

    Keys: ``failures`` and ``ignored`` (lists of {"path", "reason"}), then the builder's own keys.
    """

    def __init__(self, **builder_keys: Any):
        """Args: builder_keys: the builder's own keys and their initial values (after failures, ignored)."""
        super().__init__(failures=[], ignored=[], **builder_keys)

    def save_metadata(self, data_dir):
        path = pathlib.Path(os.fspath(data_dir)) / BUILD_LOG_NAME
        path.write_text(json.dumps(dict(self), indent=1))

    def load_metadata(self, data_dir):
        path = pathlib.Path(os.fspath(data_dir)) / BUILD_LOG_NAME
        self.clear()
        self.update(json.loads(path.read_text()))


def hash_split(key: str) -> str:
    """The split of a key: the first 8 bytes of its sha256 as a fraction in [0, 1) against `SPLIT_FRACTIONS`."""
    digest = hashlib.sha256(key.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    cumulative = 0.0
    for split, share in SPLIT_FRACTIONS:
        cumulative += share
        if fraction < cumulative:
            return split
    return SPLIT_FRACTIONS[-1][0]


def synthetic_split_ranges(num_examples: int, block: int = 1) -> dict[str, range]:
    """Contiguous index ranges per split whose boundaries are multiples of ``block``.

    With b = ceil(n / block) blocks, validation and test get floor(share * b) blocks each and train
    the first b - (those) blocks; the last block may be short. ``block`` = frames per synthetic
    region keeps every region in one split. Empty splits are left out.
    """
    blocks = -(-num_examples // block)
    sizes = {split: int(share * blocks) for split, share in SPLIT_FRACTIONS[1:]}
    sizes = {SPLIT_FRACTIONS[0][0]: blocks - sum(sizes.values()), **sizes}
    ranges, start = {}, 0
    for split, size in sizes.items():
        stop = min((start // block + size) * block, num_examples)
        if stop > start:
            ranges[split] = range(start, stop)
        start = stop
    return ranges


def group_by_split(items: Iterable[Item], split_of: Callable[[Item], str]) -> dict[str, list[Item]]:
    """Items per split, splits in `SPLIT_FRACTIONS` order, items in input order; empty splits left out."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(split_of(item), []).append(item)
    return {split: groups[split] for split, _ in SPLIT_FRACTIONS if split in groups}


def manual_dir_files(manual_dir: pathlib.Path) -> list[pathlib.Path]:
    """Every file under ``manual_dir`` (subfolders included), in path order."""
    return sorted(path for path in manual_dir.rglob("*") if path.is_file())


class PatchesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Builder skeleton: array_record files, synthetic or fits source, a `BuildLog` as ``info.metadata``.

    A subclass (named ``Builder`` in ``<name>_dataset_builder.py``, which registers it) gives
    `_info` (with a `BuildLog` as metadata), `_plan_fits` and `_generate_examples`; its configs are
    `PatchesConfig`s. Its module's logger gets the failure warnings and the per-split counts.
    """

    MANUAL_DIR_HOLDS: str
    """What ``manual_dir`` holds, for the error of a fits build without one (e.g. "a folder of ...")."""

    SYNTHETIC_BLOCK: int = 1
    """Synthetic patches per split block (`synthetic_split_ranges`): patches that must share a split."""

    BEAM_UNITS_PER_TASK: int = 1
    """`_plan_fits` units (files, observations) one Beam task reads: the unit of parallel work."""

    def __init__(self, *, num_examples: int | None = None, building: bool = False, **kwargs):
        """Args: num_examples overrides the config's; building: the builder will build (reading
        builders refuse a data dir that holds only an older version); other arguments as
        `tfds.core.GeneratorBasedBuilder`.

        Raises:
          OldBuildError: reading, and the data dir has this config only at an older version.
        """
        kwargs.setdefault("file_format", tfds.core.FileFormat.ARRAY_RECORD)
        super().__init__(**kwargs)
        self._beam_build = False
        if not building and not self.is_prepared():
            older = older_versions(pathlib.Path(self.data_dir).parent, str(self.version))
            if older:
                raise OldBuildError(
                    f"{self.name}/{self.builder_config.name} in {pathlib.Path(self.data_dir).parent} was built by "
                    f"version {', '.join(older)}; this code reads version {self.version} "
                    f"({self.RELEASE_NOTES.get(str(self.version), 'a newer format')}). Rebuild it, e.g. "
                    f"`solarjax data build --config {self.builder_config.name} --data-dir "
                    f"{pathlib.Path(self.data_dir).parents[2]}`"
                )
        if num_examples is not None and num_examples < 1:
            raise ValueError(f"num_examples must be positive, got {num_examples}")
        self._num_examples = num_examples if num_examples is not None else self.builder_config.num_examples

    @abc.abstractmethod
    def _plan_fits(self, manual_dir: pathlib.Path) -> dict[str, list]:
        """The manual dir's input units per split (`group_by_split` order); logs bad and ignored files."""

    @abc.abstractmethod
    def _generate_examples(self, items: range | list) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields (key, example) for a synthetic index range or a list of `_plan_fits` units."""

    def _fits_example_fn(self) -> ExampleFn:
        """The fits examples of a list of `_plan_fits` units, as a picklable function (a module-level
        function or a `functools.partial` of one: Beam ships it to its workers). A builder without
        one has no Beam build."""
        raise ValueError(f"{self.name} has no Beam build")

    def _download_and_prepare(self, dl_manager, download_config=None):
        config = download_config or tfds.download.DownloadConfig()
        self._beam_build = config.beam_runner is not None or config.beam_options is not None
        if self._beam_build and self.builder_config.source != "fits":
            raise ValueError(f"a Beam build reads files: {self.name}/{self.builder_config.name} is not a fits config")
        super()._download_and_prepare(dl_manager, download_config)
        if self._beam_build:
            self._merge_beam_failures()

    def _beam_failures_path(self, split: str) -> epath.Path:
        """Where the Beam tasks of ``split`` leave their failures (beside the shards; removed after the merge)."""
        return epath.Path(self.data_dir) / f"beam_failures.{split}.json"

    def _merge_beam_failures(self) -> None:
        """Adds the failures the Beam workers reported to the build log (per split, sorted by path)."""
        for split in self.info.splits:
            path = self._beam_failures_path(split)
            if not path.exists():
                continue
            for failure in sorted(json.loads(path.read_text()), key=lambda entry: entry["path"]):
                self._fail(failure["path"], failure["reason"])
            path.unlink()
        for split, info in self.info.splits.items():
            _logger_of(type(self)).info(
                "%s/%s %s: %d examples", self.name, self.builder_config.name, split, info.num_examples
            )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        # TFDS shuffles a split in memory up to MAX_MEM_BUFFER_SIZE (1 GB, ~15,000 SHARP patches) and
        # beyond that spills to temporary files through TensorFlow's gfile, which is not installed: keep
        # the whole split in memory instead (64 KB per SHARP patch: 44,000 real SHARPs are ~3 GB).
        tfds_shuffle.MAX_MEM_BUFFER_SIZE = max(tfds_shuffle.MAX_MEM_BUFFER_SIZE, IN_MEMORY_SHUFFLE_BYTES)
        if self.builder_config.source == "fits":
            work = self._plan_fits(pathlib.Path(os.fspath(dl_manager.manual_dir)))
        else:
            work = synthetic_split_ranges(self._num_examples, self.SYNTHETIC_BLOCK)
        if self._beam_build:
            example_fn = self._fits_example_fn()
            return {
                split: _beam_generation(example_fn, units, self.BEAM_UNITS_PER_TASK, self._beam_failures_path(split))
                for split, units in work.items()
            }
        return {split: self._counted(split, self._generate_examples(items)) for split, items in work.items()}

    def _counted(self, split: str, examples: Iterator[tuple[Any, dict[str, Any]]]):
        """Passes ``examples`` through, then logs how many there were."""
        count = 0
        for count, example in enumerate(examples, start=1):
            yield example
        _logger_of(type(self)).info("%s/%s %s: %d examples", self.name, self.builder_config.name, split, count)

    def _fail(self, path: pathlib.Path | str, reason: str) -> None:
        """Logs an input that could not be used (build log and a warning); the build goes on."""
        self.info.metadata["failures"].append({"path": str(path), "reason": reason})
        _logger_of(type(self)).warning("%s: skipped %s: %s", self.name, path, reason)

    def _ignore(self, path: pathlib.Path | str, reason: str) -> None:
        """Logs a file that is not input of this build (build log only)."""
        self.info.metadata["ignored"].append({"path": str(path), "reason": reason})


class OldBuildError(FileNotFoundError):
    """A dataset directory holds a build of an older version than the code reads (the build this
    code reads is missing, as `solarjax.data.pipeline.load_split` reports an absent one)."""


def older_versions(config_dir: pathlib.Path, current: str) -> list[str]:
    """Version folders (with a dataset_info.json) in a config's folder that are not ``current``, oldest first."""
    if not config_dir.is_dir():
        return []
    found = [
        path.name
        for path in config_dir.iterdir()
        if path.is_dir() and path.name != current and (path / "dataset_info.json").exists()
    ]
    return sorted(found, key=lambda name: tuple(int(p) if p.isdigit() else -1 for p in name.split(".")))


def _logger_of(builder_class: type[PatchesBuilder]) -> logging.Logger:
    """The logger of the builder's module (``data_builders.<name>.<name>_dataset_builder``)."""
    return logging.getLogger(builder_class.__module__)


def _import_beam():
    try:
        import apache_beam
    except ImportError as error:
        raise BeamUnavailableError(
            f"a Beam build needs apache-beam ({error}); it pins older protobuf, pyarrow, pillow and "
            "python-dateutil than the project's environment, so install it into a venv of its own: "
            "`make beam-venv`, then run .venv-beam/bin/solarjax"
        ) from error
    return apache_beam


def beam_pipeline_options(runner: str, workers: int | None = None, flags: Sequence[str] = ()):
    """Beam `PipelineOptions` for ``runner``.

    Args:
      runner: a Beam runner name (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...).
      workers: DirectRunner only: worker processes (``--direct_num_workers`` with the
        multi_processing running mode); None: Beam's default (one, in process).
      flags: further pipeline flags, e.g. ``--project=...`` or ``--temp_location=gs://...``.

    Raises:
      BeamUnavailableError: apache-beam is not installed.
      ValueError: ``workers`` < 1, or given for a runner other than DirectRunner.
    """
    beam = _import_beam()
    flags = list(flags)
    if workers is not None:
        if runner != "DirectRunner":
            raise ValueError(f"workers applies to the DirectRunner; pass {runner}'s own flags instead")
        if workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")
        flags += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return beam.options.pipeline_options.PipelineOptions(flags)


def _beam_generation(example_fn: ExampleFn, units: list, units_per_task: int, failures_path: epath.Path):
    """A `beam.PTransform` (pipeline root -> (key, example)) generating one split's ``units`` in tasks
    of ``units_per_task``; the failures go to ``failures_path`` as a JSON list (also when empty)."""
    beam = _import_beam()
    tasks = [units[start : start + units_per_task] for start in range(0, len(units), units_per_task)]

    @beam.ptransform_fn
    def generate(root):
        outputs = (
            root
            | "Tasks" >> beam.Create(tasks, reshuffle=True)
            | "Generate" >> beam.FlatMap(_run_beam_task, example_fn).with_outputs(BEAM_FAILURES_TAG, main="examples")
        )
        _ = (
            outputs[BEAM_FAILURES_TAG]
            | "CollectFailures" >> beam.combiners.ToList()
            | "WriteFailures" >> beam.Map(_write_json, failures_path)
        )
        return outputs.examples

    return generate()


def _run_beam_task(units: list, example_fn: ExampleFn) -> Iterator[Any]:
    """One Beam task: its (key, example) pairs, then its failures as `BEAM_FAILURES_TAG` outputs."""
    from apache_beam import pvalue

    failures = []
    yield from example_fn(units, lambda path, reason: failures.append({"path": str(path), "reason": reason}))
    for failure in failures:
        yield pvalue.TaggedOutput(BEAM_FAILURES_TAG, failure)


def _write_json(value: Any, path: epath.Path) -> None:
    epath.Path(path).write_text(json.dumps(value))


def build_dataset(
    builder_class: type[PatchesBuilder],
    config: str | PatchesConfig,
    data_dir: str | os.PathLike,
    manual_dir: str | os.PathLike | None = None,
    beam_runner: str | None = None,
    beam_options: Any = None,
    **builder_kwargs: Any,
) -> tfds.core.DatasetInfo:
    """Builds ``<name>/<config>`` of ``builder_class`` into ``data_dir``, replacing an earlier build.

    Args:
      builder_class: a registered `PatchesBuilder`.
      config: the name of one of its configs, or a `PatchesConfig` of another name.
      data_dir: TFDS data directory; the dataset lands in ``<data_dir>/<name>/<config>/<version>``.
      manual_dir: folder of input files (fits configs).
      beam_runner: fits configs: generate through Beam on this runner (e.g. "DirectRunner");
        None: a plain single-process build.
      beam_options: the runner's `PipelineOptions` (`beam_pipeline_options`); None: Beam's defaults.
      **builder_kwargs: passed to ``builder_class`` (e.g. ``num_examples``).

    Returns:
      The built dataset's info: ``info.splits[split].num_examples``, ``info.data_dir`` and
      ``info.metadata`` (the `BuildLog`, also written to ``<info.data_dir>/build_log.json``).
    """
    configs = builder_class.builder_configs
    if isinstance(config, str) and config not in configs:
        raise ValueError(f"unknown config {config!r}; choose one of {sorted(configs)}")
    source = configs[config].source if isinstance(config, str) else config.source
    if source not in SOURCES:
        raise ValueError(f"config source must be 'synthetic' or 'fits', got {source!r}")
    if source == "fits" and manual_dir is None:
        raise ValueError(
            f"the fits config needs manual_dir, {builder_class.MANUAL_DIR_HOLDS}\n"
            + builder_class.MANUAL_DOWNLOAD_INSTRUCTIONS
        )
    if beam_runner is not None:
        if source != "fits":
            raise ValueError("a Beam build reads files: give a fits config")
        if builder_class._fits_example_fn is PatchesBuilder._fits_example_fn:
            raise ValueError(f"{builder_class.name} has no Beam build")
        _import_beam()
    elif beam_options is not None:
        raise ValueError("beam_options without a beam_runner")
    builder = builder_class(config=config, data_dir=os.fspath(data_dir), building=True, **builder_kwargs)
    started = time.perf_counter()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else os.fspath(manual_dir),
            download_mode=tfds.download.GenerateMode.FORCE_REDOWNLOAD,
            try_download_gcs=False,
            beam_runner=beam_runner,
            beam_options=beam_options,
        )
    )
    seconds = time.perf_counter() - started
    total = sum(split.num_examples for split in builder.info.splits.values())
    _logger_of(builder_class).info(
        "built %s/%s: %d patches in %.1f s (%.0f patches/s), %d failures; log in %s",
        builder.name,
        builder.builder_config.name,
        total,
        seconds,
        total / seconds,
        len(builder.info.metadata["failures"]),
        pathlib.Path(builder.data_dir) / BUILD_LOG_NAME,
    )
    return builder.info
