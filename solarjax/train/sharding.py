"""`solarjax.sharding` under its old path (the mesh and shardings moved to the top of the package, where
steering, retrieval and the app use them without reaching into `solarjax.train`)."""

from solarjax.sharding import (  # noqa: F401
    DATA_AXIS,
    batch_sharded,
    check_batch_divides,
    make_data_mesh,
    replicated,
)
