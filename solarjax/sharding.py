"""Data parallelism with `jax.sharding`: one device mesh, batch split on 'data', state replicated.

    mesh = make_data_mesh()                            # every device of every process
    step = jax.jit(train_step, in_shardings=(replicated(mesh), batch_sharded(mesh), replicated(mesh)),
                   out_shardings=(replicated(mesh), replicated(mesh)))
    batch = solarjax.data.pipeline.to_global_batch(local_batch, mesh)   # multi-host global arrays

Axis type. The mesh's one axis is `AxisType.Auto`: train steps are written as single-device code
with no sharding annotations inside; `jax.jit`'s in/out shardings fix the layout of the state
(replicated) and of the batch (rows split over 'data') at the boundary, and XLA's SPMD partitioner
propagates it through the step, inserting the gradient all-reduce. With `AxisType.Explicit` the
sharding would be part of every intermediate's type, and code such as drawing the latent batch
inside the step would need explicit ``out_sharding`` annotations. Recent JAX defaults
`jax.make_mesh` to Explicit, so the type is stated here.

Multi-host: call `jax.distributed.initialize()` first; `jax.devices()` then lists the devices of all
processes, each process feeds its own rows, and the same code runs unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named 'data' (axis type Auto) over `devices` (default: all, every process)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("make_data_mesh needs at least one device")
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state, keys, metrics)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split in equal blocks over the 'data' axis; other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_divides(global_batch_size: int, mesh: Mesh) -> None:
    """Raises ValueError unless the global batch splits evenly over the mesh's 'data' axis."""
    devices = mesh.shape[DATA_AXIS]
    if global_batch_size <= 0 or global_batch_size % devices:
        raise ValueError(
            f"global batch size {global_batch_size} must be a positive multiple of the {devices} "
            f"devices on mesh axis {DATA_AXIS!r}"
        )
