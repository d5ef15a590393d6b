"""Mixed precision: compute in a narrower float type while parameters and optimiser state stay float32.

A trainer keeps every parameter, optimiser moment and BatchNorm statistic in float32 and, for each
forward pass, casts the floating parameters and inputs to the compute dtype (`cast_floating`);
outputs are cast back to float32 before the loss (`to_float32`). The gradient of a cast is the cast
of the gradient, so the parameter gradients arrive in float32 (the "f32 master weights" recipe,
Micikevicius et al. 2018). bfloat16 keeps float32's exponent range, so no loss scaling is needed.

Names: ``'float32'`` (the default: no cast is made at all, so the numbers are those of a trainer
without this module) and ``'bfloat16'``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype_of(name: str | None) -> Any:
    """The jnp dtype of a compute-dtype name (None means 'float32').

    Raises:
      ValueError: a name not in `COMPUTE_DTYPES`.
    """
    name = "float32" if name is None else str(name)
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {name!r}")
    return COMPUTE_DTYPES[name]


def is_mixed(name: str | None) -> bool:
    """True when `name` asks for a compute dtype other than float32."""
    return compute_dtype_of(name) != jnp.float32


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Every floating leaf of a pytree cast to `dtype`; integer, boolean and key leaves unchanged."""

    def cast(leaf):
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf).astype(dtype)
        return leaf

    return jax.tree.map(cast, tree)


def to_float32(tree: Any) -> Any:
    """`cast_floating` to float32 (outputs before a loss, statistics before they are stored)."""
    return cast_floating(tree, jnp.float32)
