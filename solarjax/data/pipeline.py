"""Input pipeline: grain over the TFDS `sharp_patches` (or `aia_patches`) data source, batched for a device mesh.

The dataset is built once (``solarjax data build``, see `data_builders.sharp_patches.build`) into
``data_dir``; this module reads it with ``tfds.data_source`` (array_record, no TensorFlow) and a
grain ``DataLoader``:

    it = make_iterator("train", batch_size=32, seed=23, data_dir=data_dir)
    batch = next(it)                        # {"image": float32 [32, 128, 128, 1]} on this process
    aia = make_iterator("train", batch_size=32, seed=23, data_dir=data_dir, dataset="aia_patches")
    next(aia)["image"]                      # float32 [32, 128, 128, C], C AIA channels in [0, 1]
    images = to_global_batch(batch, mesh)   # jax.Array [32 * process_count, ...] sharded on 'data'
    state = it.get_state()                  # bytes: store them in the checkpoint
    it.set_state(state)                     # resume at the next example

Order of examples. One global order per ``(seed, epoch)``: a grain ``IndexSampler`` shuffles the
whole split (a fresh permutation each epoch). Process ``p`` of ``P`` takes the global positions
``p, p + P, p + 2P, ...`` and groups ``batch_size // P`` of them, so the union over processes of
their ``k``-th batches is exactly the ``k``-th global batch of a single-process run: the data
stream does not depend on the number of hosts.

Examples are read in this process (grain's prefetch threads); grain worker processes are not
used: they need absl flags parsed and they change the example order with the worker count.

Augmentation. ``augment(batch, rng) -> batch`` runs on each process-local batch (numpy arrays)
with a ``numpy.random.Generator`` that grain seeds from ``seed`` and the batch position, so a
resumed iterator repeats the same augmentations. A JAX augmentation can draw its key from it:
``jax.random.key(rng.integers(2**32))``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import data_builders  # noqa: F401  (registers the solarjax builders with TFDS)

DATASET_NAME = "sharp_patches"
"""The default dataset; `aia_patches` (multi-channel AIA EUV patches) is read the same way."""

Batch = dict[str, np.ndarray]
Augmentation = Callable[[Batch, np.random.Generator], Batch]


def load_split(split: str, *, data_dir: str | os.PathLike, config: str = "synthetic", dataset: str = DATASET_NAME):
    """The built ``<dataset>/<config>`` split as a random-access data source.

    Args:
      split: 'train', 'validation' or 'test'.
      data_dir: the TFDS data directory the dataset was built into.
      config: builder config name, 'synthetic' or 'fits'.
      dataset: 'sharp_patches' or 'aia_patches'.

    Returns:
      A ``tfds`` ArrayRecord data source: ``len(source)`` examples, ``source[i]`` a dict of numpy
      values (Text features come back as ``bytes``).

    Raises:
      FileNotFoundError: the dataset was not built into ``data_dir``.
      ValueError: the dataset has no such split.
    """
    name = f"{dataset}/{config}"
    builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        how = (
            f"run `solarjax data build --config {config} --data-dir {data_dir}` first"
            if dataset == DATASET_NAME
            else f"build it first with data_builders.{dataset}"
        )
        raise FileNotFoundError(f"dataset {name} is not built in {builder.data_dir}: {how}")
    if split not in builder.info.splits:
        raise ValueError(
            f"dataset {name} in {builder.data_dir} has no split {split!r}; it has {sorted(builder.info.splits.keys())}"
        )
    return builder.as_data_source(split=split)


class _SelectFeatures(grain.transforms.Map):
    """Keeps the named features of one example as numpy values of their declared dtype.

    TFDS decodes scalar features to Python floats and ints; casting here keeps a float32 feature
    float32 once batched. Text features stay ``bytes``.
    """

    def __init__(self, features: tfds.features.FeaturesDict, keys: Sequence[str]):
        missing = [k for k in keys if k not in features]
        if missing:
            raise KeyError(f"features {missing} are not in the dataset; it has {sorted(features.keys())}")
        self._dtypes = {k: features[k].np_dtype for k in keys}

    def map(self, element: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: element[k] if dtype == np.object_ else np.asarray(element[k], dtype=dtype)
            for k, dtype in self._dtypes.items()
        }


class _CanonicalPolarity(grain.transforms.Map):
    """Makes the leading polarity positive: B -> -B where the example's ``lead_polarity`` < 0.

    Drops ``lead_polarity`` afterwards unless ``keep_lead_polarity`` (then it is flipped too, so it
    describes the returned image). Examples with an undefined (NaN) leading polarity are unchanged.
    """

    def __init__(self, keep_lead_polarity: bool):
        self._keep = keep_lead_polarity

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        element = dict(element)
        lead = element["lead_polarity"] if self._keep else element.pop("lead_polarity")
        if lead < 0:
            element["image"] = -element["image"]
            if self._keep:
                element["lead_polarity"] = -lead
        return element


class _AugmentBatch(grain.transforms.RandomMap):
    """Applies the user's ``augment(batch, rng)`` with grain's per-batch seeded generator."""

    def __init__(self, augment: Augmentation):
        self._augment = augment

    def random_map(self, element: Batch, rng: np.random.Generator) -> Batch:
        return self._augment(element, rng)


def make_iterator(
    split: str,
    *,
    batch_size: int,
    seed: int,
    data_dir: str | os.PathLike,
    config: str = "synthetic",
    dataset: str = DATASET_NAME,
    num_epochs: int | None = None,
    shuffle: bool = True,
    drop_remainder: bool = True,
    keys: Sequence[str] = ("image",),
    augment: Augmentation | None = None,
    canonical_polarity: bool = False,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.DataLoaderIterator:
    """A checkpointable iterator over process-local batches of one split.

    Args:
      split: 'train', 'validation' or 'test'.
      batch_size: global batch size (all processes together); each process yields
        ``batch_size // process_count`` examples per batch.
      seed: shuffle and augmentation seed, an integer in [0, 2**32).
      data_dir: TFDS data directory holding the built dataset.
      config: 'synthetic' or 'fits'.
      dataset: 'sharp_patches' or 'aia_patches'.
      num_epochs: passes over the split; None repeats forever.
      shuffle: shuffle the split with a fresh permutation per epoch (deterministic in ``seed``).
      drop_remainder: drop a last incomplete batch (use True for training: one jit shape).
      keys: features to keep, e.g. ('image',) or ('image', 'tuf', 'harpnum').
      augment: optional ``augment(batch, rng) -> batch`` on each process-local numpy batch.
      canonical_polarity: sharp_patches only: flip the sign of every image whose leading polarity
        is negative, so that all lead with positive flux (a GAN then need not make the field odd
        in z; see experiments/README.md, "GAN configs").
      process_index, process_count: this process's shard; default ``jax.process_index()`` and
        ``jax.process_count()`` (set them to emulate several hosts in one process).

    Returns:
      A grain ``DataLoaderIterator`` yielding ``dict[str, np.ndarray]`` with a leading batch
      dimension (``image``: float32 [batch_size // process_count, 128, 128, 1], B / 1000 G, for
      sharp_patches; [..., 128, 128, C] normalised intensities of C channels for aia_patches);
      ``get_state()`` / ``set_state(state)`` save and restore the position.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if batch_size <= 0 or batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} must be a positive multiple of the process count {process_count}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed}")
    source = load_split(split, data_dir=data_dir, config=config, dataset=dataset)
    sampler = grain.samplers.IndexSampler(num_records=len(source), shuffle=shuffle, num_epochs=num_epochs, seed=seed)
    read_keys = tuple(keys) + (("lead_polarity",) if canonical_polarity and "lead_polarity" not in keys else ())
    operations: list[Any] = [_SelectFeatures(source.dataset_info.features, read_keys)]
    if canonical_polarity:
        operations.append(_CanonicalPolarity(keep_lead_polarity="lead_polarity" in keys))
    operations += [
        grain.transforms.Batch(batch_size=batch_size // process_count, drop_remainder=drop_remainder),
    ]
    if augment is not None:
        operations.append(_AugmentBatch(augment))
    loader = grain.DataLoader(
        data_source=source,
        sampler=sampler,
        operations=operations,
        shard_options=grain.sharding.ShardOptions(
            shard_index=process_index, shard_count=process_count, drop_remainder=True
        ),
    )
    return iter(loader)


def to_global_batch(batch: Mapping[str, np.ndarray], mesh: Mesh, axis: str = "data") -> dict[str, jax.Array]:
    """Assembles process-local batches into global arrays sharded over ``mesh`` along ``axis``.

    Every process calls this with its own local batch (same shapes on every process); the result
    has leading dimension ``local_rows * process_count``, split into equal row blocks over the
    devices of ``axis`` (``NamedSharding(mesh, P(axis))``); other dimensions are not sharded.

    Args:
      batch: dict of numeric numpy arrays [local_rows, ...] (not Text/bytes features).
      mesh: the device mesh; ``axis`` must be one of its axis names.
      axis: mesh axis that shards the batch dimension.

    Returns:
      dict of ``jax.Array`` [local_rows * process_count, ...].

    Raises:
      ValueError: ``axis`` is not a mesh axis, or the global batch does not divide evenly over it.
    """
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has axes {mesh.axis_names}, not {axis!r}")
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    devices_on_axis = mesh.shape[axis]
    global_arrays = {}
    for name, local in batch.items():
        local = np.asarray(local)
        global_rows = local.shape[0] * jax.process_count()
        if global_rows % devices_on_axis:
            raise ValueError(
                f"feature {name!r}: global batch of {global_rows} rows does not split evenly over "
                f"{devices_on_axis} devices on mesh axis {axis!r}"
            )
        global_arrays[name] = jax.make_array_from_process_local_data(sharding, local)
    return global_arrays
