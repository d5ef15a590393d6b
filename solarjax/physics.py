"""Physical quantities of magnetogram patches: exact (hard threshold) and smooth (differentiable).

Every function here is pure JAX, batched and jitted (`threshold` is a static argument, so each
threshold compiles once per image shape). Images are normalised radial-field patches
s = B / 1000 G clipped to [-1, 1], shaped [N, H, W] or [N, H, W, 1]; results are arrays [N].

Definitions (Chatterjee, Munoz-Jaramillo & Malanushenko 2025, arXiv:2502.05351, physical quantities; the
authors' code where the paper is silent), with th the polarity threshold (0.15 = 150 G):

  pos = s > th, neg = s < -th. Pixel (row, col) sits at index (row, col) of the array, rows
  counted from the array's first row. Centroids are flux weighted,
  c_pos = sum(idx * s) / sum(s) over pos, c_neg likewise over neg.

  tuf            sum(|s|) / (H * W) over all pixels.
  tpf            mean of s over s > 0 (no threshold).
  tnf            mean of |s| over s < 0 (no threshold).
  net_flux       sum(s) over pos + sum(s) over neg, in normalised units times pixels.
  psep           |c_neg - c_pos| / sqrt(H^2 + W^2): the separation over the patch diagonal, which
                 is the paper's 128 * sqrt(2) for a 128 x 128 patch.
  tilt           arcsin((row(c_neg) - row(c_pos)) / |c_neg - c_pos|) in radians, in [-pi/2, pi/2];
                 positive when the negative centroid lies at a larger row index. Computed as
                 arctan2(d_row, |d_col|), which is the same angle without arcsin's loss of precision
                 near +-1.
  area           (|pos| + |neg|) / (H * W).
  lead_polarity  col(c_pos) - col(c_neg), in pixels.
  r_value        sum(|s|) over the overlap of pos and neg, each dilated by a 7 x 7 square (pixels
                 outside the image count as neither polarity), in normalised units times pixels.

Every quantity is NaN for a patch whose pos or neg is empty; tilt is also NaN when the two
centroids coincide. Images must be finite (preprocessing maps NaN to 0); NaN pixels propagate.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

QUANTITY_NAMES = ("tuf", "tpf", "tnf", "net_flux", "psep", "tilt", "area", "lead_polarity", "r_value")

DILATION_RADIUS = 3  # the R dilation is a (2 * 3 + 1) = 7 pixel square
from solarjax.units import GAUSS_PER_UNIT  # noqa: E402  (field of s = 1, in G)

CM_PER_MM = 1e8  # 1 Mm = 1e8 cm
CHUNK_IMAGES = 4  # images per step of the exact kernel: 256 KB, so each step works in cache


def _as_stack(images) -> jax.Array:
    """[N, H, W] or [N, H, W, 1] floating images -> [N, H, W]; a clear error otherwise."""
    images = jnp.asarray(images)
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"images must be floating point (normalised field B / 1000 G), got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or 0 in images.shape:
        raise ValueError(f"images must be shaped [N, H, W] or [N, H, W, 1] with N, H, W >= 1, got {images.shape}")
    return images


def _check_threshold(threshold) -> None:
    if isinstance(threshold, (int, float)) and not threshold >= 0:
        raise ValueError(f"threshold must be >= 0 (normalised field), got {threshold}")


# ----------------------------------------------------------------------------------------------
# Exact quantities.


def _dilate_axis(code: jax.Array, axis: int) -> jax.Array:
    """Bitwise OR of `code` over the window [i - 3, i + 3] along `axis`, zero outside.

    Three OR passes instead of six: windows of 2, then 4, then 7 pixels.
    """
    n = code.shape[axis]
    padding = [(0, 0)] * code.ndim
    padding[axis] = (DILATION_RADIUS, DILATION_RADIUS)
    padded = jnp.pad(code, padding)

    def window(x, start, length):
        return lax.slice_in_dim(x, start, start + length, axis=axis)

    m = n + 2 * DILATION_RADIUS
    two = window(padded, 0, m - 1) | window(padded, 1, m - 1)
    four = window(two, 0, m - 3) | window(two, 2, m - 3)
    return window(four, 0, n) | window(four, 3, n)


def _polarity_overlap(pos: jax.Array, neg: jax.Array) -> jax.Array:
    """Overlap of pos and neg after a 7 x 7 square dilation of each; bool [..., H, W].

    Both masks travel in one uint8 (bit 0: pos, bit 1: neg), so one separable dilation serves
    both, and the overlap is where both bits are set.
    """
    code = pos.astype(jnp.uint8) | (neg.astype(jnp.uint8) << 1)
    dilated = _dilate_axis(_dilate_axis(code, code.ndim - 2), code.ndim - 1)
    return dilated == 3


def _column_sums(x: jax.Array) -> jax.Array:
    """Sum over axis 1 of [C, H, W] by pairwise halving -> [C, W].

    XLA fuses the halving adds, with `x`'s own elementwise computation at the leaves, into
    loops that are vectorised along W: on CPU this is several times faster than a reduce op,
    and the pairwise order is more accurate than a sequential sum.
    """
    while x.shape[1] > 1:
        half = x.shape[1] // 2
        head = x[:, :half] + x[:, half : 2 * half]
        x = head if x.shape[1] % 2 == 0 else head.at[:, 0].add(x[:, 2 * half])
    return x[:, 0]


def _chunk_moments(images: jax.Array, threshold) -> dict[str, jax.Array]:
    """The sums that every exact quantity is made of, for a chunk [C, H, W]; each [C].

    Each sum is a column sum over H (`_column_sums`) of one per-pixel feature, followed by a
    tiny sum over W, weighted by the column index where a column moment is needed. Positions
    are measured from the image centre ((H - 1) / 2, (W - 1) / 2), so that first moments stay
    small and centroid differences keep their precision. The four pixel counts travel two per
    feature, as count_a + (H + 1) * count_b: column sums of such codes are integers below
    H * (H + 2), exact in the images' float type, and split again exactly as long as
    8 (H + 1)^2 <= 2^24 in float32 (H <= 1447; `_moments` checks).
    """
    _, height, width = images.shape
    dtype = images.dtype
    threshold = jnp.asarray(threshold, dtype)
    rows = jnp.arange(height, dtype=dtype)[:, None] - (height - 1) / 2
    cols = jnp.arange(width, dtype=dtype) - (width - 1) / 2
    base = height + 1
    pos = images > threshold
    neg = images < -threshold
    field_pos = jnp.where(pos, images, 0)
    field_neg = jnp.where(neg, images, 0)
    overlap = _polarity_overlap(pos, neg)
    code_pos = jnp.where(pos, base + 1, jnp.where(images > 0, base, 0)).astype(dtype)
    code_neg = jnp.where(neg, base + 1, jnp.where(images < 0, base, 0)).astype(dtype)
    column_code_pos = _column_sums(code_pos)  # count(pos) + base * count(s > 0) per column
    column_code_neg = _column_sums(code_neg)
    column_positive = jnp.floor((column_code_pos + 0.5) / base)  # + 0.5: exact although XLA
    column_negative = jnp.floor((column_code_neg + 0.5) / base)  # multiplies by a rounded 1/base
    column_flux_pos = _column_sums(field_pos)
    column_flux_neg = _column_sums(field_neg)
    column_sum_positive = _column_sums(jnp.maximum(images, 0))

    def total(column_sums):
        return jnp.sum(column_sums, axis=-1)

    return {
        "flux_pos": total(column_flux_pos),
        "flux_neg": total(column_flux_neg),
        "row_moment_pos": total(_column_sums(field_pos * rows)),
        "col_moment_pos": column_flux_pos @ cols,
        "row_moment_neg": total(_column_sums(field_neg * rows)),
        "col_moment_neg": column_flux_neg @ cols,
        "count_pos": total(column_code_pos - base * column_positive),
        "count_neg": total(column_code_neg - base * column_negative),
        "count_positive": total(column_positive),
        "count_negative": total(column_negative),
        "sum_positive": total(column_sum_positive),
        "sum_abs": total(column_sum_positive - _column_sums(jnp.minimum(images, 0))),
        "r_value": total(_column_sums(jnp.where(overlap, jnp.abs(images), 0))),
    }


def _moments(images: jax.Array, threshold) -> dict[str, jax.Array]:
    """`_chunk_moments` of a stack [N, H, W]; each value [N].

    A batch sharded along explicit mesh axes is computed where it lies: each device takes its
    own images (shard_map). Otherwise (one device, or automatic sharding) see `_local_moments`.
    """
    spec = jax.typeof(images).sharding.spec
    batch_axes = spec[0] if len(spec) else None
    if batch_axes is None:
        return _local_moments(images, threshold)
    batch_spec = jax.sharding.PartitionSpec(batch_axes)
    return jax.shard_map(
        functools.partial(_local_moments, threshold=threshold),
        mesh=jax.typeof(images).sharding.mesh,
        in_specs=batch_spec,
        out_specs=batch_spec,
        check_vma=False,
    )(images)


def _local_moments(images: jax.Array, threshold) -> dict[str, jax.Array]:
    """`_chunk_moments` of a stack [N, H, W], CHUNK_IMAGES at a time; each value [N].

    The loop is software-pipelined: each step computes the moments of the chunk it carries and
    copies out the next one. The copy is the only pass that reads the batch from memory; the
    dozen feature passes then read the chunk from cache, and never index the whole batch
    with the loop counter (XLA on CPU vectorises such dynamically-indexed loops poorly).
    The last N mod CHUNK_IMAGES images are one more, smaller chunk.
    """
    count, height, width = images.shape
    if 8 * (height + 1) ** 2 > 2 ** (jnp.finfo(images.dtype).nmant + 1):
        raise ValueError(
            f"images of {height} rows are too tall for exact pixel counts in "
            f"{images.dtype} (at most 1447 rows in float32)"
        )
    chunk = min(CHUNK_IMAGES, count)
    steps, remainder = divmod(count, chunk)
    chunks = images[: steps * chunk].reshape(steps, chunk, height, width)

    def step(i, carry):
        current, moments = carry
        following = lax.dynamic_index_in_dim(chunks, jnp.minimum(i + 1, steps - 1), 0, keepdims=False)
        moments = jax.tree.map(
            lambda all_, new: lax.dynamic_update_index_in_dim(all_, new, i, 0),
            moments,
            _chunk_moments(current, threshold),
        )
        return following, moments

    shapes = jax.eval_shape(lambda: _chunk_moments(chunks[0], threshold))
    empty = jax.tree.map(lambda s: jnp.zeros((steps,) + s.shape, s.dtype), shapes)
    _, moments = lax.fori_loop(0, steps, step, (chunks[0], empty))
    moments = jax.tree.map(lambda m: m.reshape(steps * chunk), moments)
    if remainder:
        rest = _chunk_moments(images[steps * chunk :], threshold)
        moments = jax.tree.map(lambda m, r: jnp.concatenate([m, r]), moments, rest)
    return moments


def _centroid_offsets(m: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(d_row, d_col) = c_neg - c_pos in pixels, [N] each."""
    d_row = m["row_moment_neg"] / m["flux_neg"] - m["row_moment_pos"] / m["flux_pos"]
    d_col = m["col_moment_neg"] / m["flux_neg"] - m["col_moment_pos"] / m["flux_pos"]
    return d_row, d_col


def _tilt(d_row: jax.Array, d_col: jax.Array) -> jax.Array:
    """arcsin(d_row / hypot(d_row, d_col)) as arctan2(d_row, |d_col|); NaN where both are 0."""
    return jnp.where((d_row == 0) & (d_col == 0), jnp.nan, jnp.arctan2(d_row, jnp.abs(d_col)))


def _undefined_to_nan(values: dict[str, jax.Array], m: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Every value set to NaN for the patches that lack a positive or a negative polarity."""
    defined = (m["count_pos"] > 0) & (m["count_neg"] > 0)
    return {name: jnp.where(defined, value, jnp.nan) for name, value in values.items()}


RAW_FIELD_PEAK = 10.0
"""|s| beyond this (10,000 G, above any solar field) marks a host batch as a raw field in G, not s = B / 1000 G:
a raw SHARP patch reaches hundreds of G at least, a normalised one at most 1 (a few if left unclipped)."""
_RAW_CHECK_IMAGES = 64  # images of a host batch the range check reads (a raw field is raw in every image)


def _refuse_raw_field(images) -> None:
    """Refuses input that is a field with units or in raw G rather than the normalised s (one clear line)."""
    fix = (
        "preprocess it first (solarjax.data.preprocess, clip to +-1000 G and divide by 1000 G), or use "
        "solarjax.interop.physical_quantities for a field with units"
    )
    if hasattr(images, "unit"):  # an astropy Quantity
        raise ValueError(
            f"physics.quantities takes normalised patches s = B / 1000 G, got a Quantity in {images.unit}: " + fix
        )
    if isinstance(images, jax.Array):  # device arrays and tracers: not read back to the host
        return
    sample = np.asarray(images)[:_RAW_CHECK_IMAGES]
    if sample.size and np.issubdtype(sample.dtype, np.number):
        peak = float(np.nanmax(np.abs(sample), initial=0.0))
        if peak > RAW_FIELD_PEAK:
            raise ValueError(
                f"physics.quantities takes normalised patches s = B / 1000 G in [-1, 1], but |values| "
                f"reach {peak:g}: a raw field in G? " + fix
            )


def quantities(images, threshold: float = 0.15) -> dict[str, jax.Array]:
    """The nine physical quantities of each patch (hard threshold), see the module docstring.

    A NumPy batch larger than HOST_CHUNK_IMAGES is streamed to the device in chunks, each
    chunk's transfer overlapping the previous chunk's computation (`_host_chunked`); anything
    else (JAX arrays, tracers under jit, small batches) goes straight to the jitted kernel.

    Args:
      images: [N, H, W] or [N, H, W, 1] normalised field s = B / 1000 G.
      threshold: polarity threshold on s (0.15 = 150 G), >= 0.

    Returns:
      dict name -> [N] array in the images' dtype, keys QUANTITY_NAMES; NaN where undefined.

    Raises:
      ValueError: an astropy Quantity, or a host (NumPy) batch whose |values| exceed `RAW_FIELD_PEAK`:
        a raw field in G, not s (device arrays are the library's own images and are not checked).
    """
    _refuse_raw_field(images)
    if _streams_from_host(images):
        _check_threshold(threshold)
        return _host_chunked(functools.partial(_quantities_jit, threshold=threshold), images)
    return _quantities_jit(images, threshold=threshold)


# ----------------------------------------------------------------------------------------------
# NumPy batches: chunked transfer overlapped with computation.

HOST_CHUNK_IMAGES = 1024  # images per transfer of a NumPy batch (64 MB of float32 128 x 128)
_ALIGNMENT = 64  # bytes; XLA:CPU wraps a host buffer without copying only when so aligned


def _streams_from_host(images) -> bool:
    """True for a floating NumPy batch [N, H, W(, 1)] with N > HOST_CHUNK_IMAGES."""
    return (
        isinstance(images, np.ndarray)
        and images.ndim in (3, 4)
        and np.issubdtype(images.dtype, np.floating)
        and (images.ndim == 3 or images.shape[-1] == 1)
        and images.shape[0] > HOST_CHUNK_IMAGES
        and 0 not in images.shape
    )


def _aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data start on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    raw = np.empty(math.prod(shape) * dtype.itemsize + _ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    return raw[start : start + math.prod(shape) * dtype.itemsize].view(dtype).reshape(shape)


def _zero_copy_ready(block: np.ndarray, dtype) -> bool:
    return block.dtype == dtype and block.flags.c_contiguous and block.ctypes.data % _ALIGNMENT == 0


def _host_chunked(kernel, images: np.ndarray) -> dict[str, jax.Array]:
    """`kernel` (a jitted function of [C, H, W] -> dict of [C]) over a NumPy batch, chunk by chunk.

    Every chunk has HOST_CHUNK_IMAGES images (the last is zero-padded), so the kernel compiles
    once whatever N. A chunk that is already in JAX's dtype, contiguous and 64-byte aligned is
    handed to the device without a copy; any other is converted (e.g. float64 -> float32 when
    x64 is off) straight into one of two aligned staging buffers, which then also goes without a
    copy. JAX dispatches asynchronously, so the host converts chunk i + 1 while chunk i
    computes; a staging buffer is refilled only after the chunk that used it has finished.
    Returns after every chunk has finished (the user's array may be aliased until then).
    """
    stack = images[..., 0] if images.ndim == 4 else images
    count, height, width = stack.shape
    dtype = jax.dtypes.canonicalize_dtype(stack.dtype)
    chunk = HOST_CHUNK_IMAGES
    staging = [None, None]
    in_flight = [None, None]
    results = []
    for index, start in enumerate(range(0, count, chunk)):
        block = stack[start : start + chunk]
        if block.shape[0] == chunk and _zero_copy_ready(block, dtype):
            host = block
        else:
            slot = index % 2
            if in_flight[slot] is not None:
                jax.block_until_ready(in_flight[slot])
            if staging[slot] is None:
                staging[slot] = _aligned_empty((chunk, height, width), dtype)
            host = staging[slot]
            host[: block.shape[0]] = block
            host[block.shape[0] :] = 0
        values = kernel(jax.device_put(host, may_alias=True))
        results.append(values)
        if host is not block:
            in_flight[index % 2] = values
    merged = {name: jnp.concatenate([values[name] for values in results])[:count] for name in results[0]}
    return jax.block_until_ready(merged)


@functools.partial(jax.jit, static_argnames="threshold")
def _quantities_jit(images, threshold: float = 0.15) -> dict[str, jax.Array]:
    """`quantities` of a device array or tracer (see `quantities`)."""
    _check_threshold(threshold)
    images = _as_stack(images)
    _, height, width = images.shape
    m = _moments(images, threshold)
    d_row, d_col = _centroid_offsets(m)
    pixels = height * width
    values = {
        "tuf": m["sum_abs"] / pixels,
        "tpf": m["sum_positive"] / m["count_positive"],
        "tnf": (m["sum_abs"] - m["sum_positive"]) / m["count_negative"],
        "net_flux": m["flux_pos"] + m["flux_neg"],
        "psep": jnp.hypot(d_row, d_col) / math.hypot(height, width),
        "tilt": _tilt(d_row, d_col),
        "area": (m["count_pos"] + m["count_neg"]) / pixels,
        "lead_polarity": -d_col,
        "r_value": m["r_value"],
    }
    return _undefined_to_nan(values, m)


@functools.partial(jax.jit, static_argnames="threshold")
def physical_quantities(images, pixel_size_mm, threshold: float = 0.15) -> dict[str, jax.Array]:
    """The quantities of each patch in physical units, given the patch's plate scale.

    Conversions: B = 1000 G * s; a pixel covers dA = row_size * col_size Mm^2
    = row_size * col_size * 1e16 cm^2 (1 Mm = 1e8 cm); flux is B dA in Mx (G cm^2).

      unsigned_flux_mx  sum(|B| dA) over all pixels (TUF in Mx).
      net_flux_mx       sum(B dA) over pos and neg (net_flux in Mx).
      tpf_g, tnf_g      mean B over B > 0 and mean |B| over B < 0, in G.
      psep_mm           |c_neg - c_pos| in Mm, with rows and columns scaled by their own size.
      tilt_rad          the tilt of the physical separation vector, arctan2(d_row_mm, |d_col_mm|)
                        (equal to `quantities`' tilt for square pixels).
      area_mm2          (|pos| + |neg|) dA in Mm^2.
      lead_polarity_mm  col(c_pos) - col(c_neg) in Mm.
      r_value_mx        sum(|B| dA) over the dilated-polarity overlap, in Mx.

    Args:
      images: [N, H, W] or [N, H, W, 1] normalised field s = B / 1000 G.
      pixel_size_mm: [N, 2] or [2], (row, col) size in Mm of one pixel of *this* image; for a
        patch resized from (H0, W0) to (H, W) it is the original size times (H0 / H, W0 / W).
      threshold: polarity threshold on s (0.15 = 150 G), >= 0.

    Returns:
      dict name -> [N] array; NaN where the patch lacks a polarity (as in `quantities`).
    """
    _check_threshold(threshold)
    images = _as_stack(images)
    count = images.shape[0]
    pixel_size_mm = jnp.asarray(pixel_size_mm, images.dtype)
    if pixel_size_mm.shape not in ((2,), (count, 2)):
        raise ValueError(
            f"pixel_size_mm must be shaped [2] or [N, 2] = [{count}, 2] "
            f"(row, col size in Mm), got {pixel_size_mm.shape}"
        )
    pixel_size_mm = jnp.broadcast_to(pixel_size_mm, (count, 2))
    row_mm, col_mm = pixel_size_mm[:, 0], pixel_size_mm[:, 1]
    pixel_area_mm2 = row_mm * col_mm
    pixel_area_cm2 = pixel_area_mm2 * CM_PER_MM**2
    m = _moments(images, threshold)
    d_row, d_col = _centroid_offsets(m)
    d_row_mm, d_col_mm = d_row * row_mm, d_col * col_mm
    values = {
        "unsigned_flux_mx": GAUSS_PER_UNIT * m["sum_abs"] * pixel_area_cm2,
        "net_flux_mx": GAUSS_PER_UNIT * (m["flux_pos"] + m["flux_neg"]) * pixel_area_cm2,
        "tpf_g": GAUSS_PER_UNIT * m["sum_positive"] / m["count_positive"],
        "tnf_g": GAUSS_PER_UNIT * (m["sum_abs"] - m["sum_positive"]) / m["count_negative"],
        "psep_mm": jnp.hypot(d_row_mm, d_col_mm),
        "tilt_rad": _tilt(d_row_mm, d_col_mm),
        "area_mm2": (m["count_pos"] + m["count_neg"]) * pixel_area_mm2,
        "lead_polarity_mm": -d_col_mm,
        "r_value_mx": GAUSS_PER_UNIT * m["r_value"] * pixel_area_cm2,
    }
    return _undefined_to_nan(values, m)


def unsigned_flux_above_mx(br_gauss, pixel_area_cm2, threshold_gauss: float = 150.0):
    """Unsigned flux sum(|B| dA) of the pixels with |B| > threshold, in Mx; NaN pixels ignored.

    For full-resolution patches in G (SHARP's USFLUX-like summary, before any clipping or resize).
    Works on NumPy arrays (computed in float64 NumPy) and on JAX arrays (jnp, jit-able).

    Args:
      br_gauss: [..., H, W] radial field in G; NaN marks pixels without data.
      pixel_area_cm2: area of one pixel in cm^2, scalar or broadcastable to [...].
      threshold_gauss: |B| threshold in G.

    Returns:
      [...] unsigned flux in Mx.
    """
    if isinstance(br_gauss, jax.Array):
        xp, magnitude = jnp, jnp.abs(br_gauss)
    else:
        xp, magnitude = np, np.abs(np.asarray(br_gauss, np.float64))
    if magnitude.ndim < 2:
        raise ValueError(f"br_gauss must be shaped [..., H, W], got {magnitude.shape}")
    above = xp.where(magnitude > threshold_gauss, magnitude, 0)  # NaN > threshold is False
    return xp.sum(above, axis=(-2, -1)) * pixel_area_cm2


# ----------------------------------------------------------------------------------------------
# Smooth quantities.


def _box_sum_axis(x: jax.Array, axis: int) -> jax.Array:
    """Sum of `x` over the window [i - 3, i + 3] along `axis`, zero outside."""
    n = x.shape[axis]
    padding = [(0, 0)] * x.ndim
    padding[axis] = (DILATION_RADIUS, DILATION_RADIUS)
    padded = jnp.pad(x, padding)
    return sum(lax.slice_in_dim(padded, k, k + n, axis=axis) for k in range(2 * DILATION_RADIUS + 1))


def _soft_dilation(log_absent: jax.Array) -> jax.Array:
    """Soft OR over each 7 x 7 window: 1 - prod(1 - m), from log(1 - m) [N, H, W]."""
    log_none = _box_sum_axis(_box_sum_axis(log_absent, 1), 2)
    return -jnp.expm1(log_none)


@functools.partial(jax.jit, static_argnames="threshold")
def smooth_quantities(
    images, threshold: float = 0.15, sharpness: float = 50.0, min_flux: float = 1e-6, min_separation: float = 1e-3
) -> dict[str, jax.Array]:
    """Differentiable versions of `quantities`, converging to them as `sharpness` grows.

    Hard masks become logistic ones: pos -> sigmoid(k (s - th)), neg -> sigmoid(k (-s - th)),
    s > 0 -> sigmoid(k s), with k = `sharpness` per unit of s (a transition about 4 / k wide:
    k = 50 blurs the threshold over +-0.04 = +-40 G). The 7 x 7 dilation becomes the soft OR
    1 - prod(1 - m) over the window, computed as 1 - exp(box_sum(-softplus(k (s - th)))), which
    is separable, exact for hard masks, and has finite gradients. The polarity centroids weigh each
    pixel by |s| times its soft mask, never negatively, so they stay inside the patch. Divisions use floors
    (`min_flux` for flux and pixel-count denominators, `min_separation` pixels inside the
    separation's square root), so every value and gradient is finite, also for patches where
    `quantities` returns NaN; such values are meaningless, and `quantities` says which they are.

    Args:
      images: [N, H, W] or [N, H, W, 1] normalised field s = B / 1000 G.
      threshold: polarity threshold on s, >= 0.
      sharpness: k, logistic slope per unit of s; larger is closer to `quantities`.
      min_flux: floor of denominators (normalised field times pixels).
      min_separation: pixels; psep is sqrt(d^2 + min_separation^2), tilt uses the same |d_col|.

    Returns:
      dict name -> [N], keys QUANTITY_NAMES.
    """
    _check_threshold(threshold)
    s = _as_stack(images)
    _, height, width = s.shape
    pixels = height * width
    rows = jnp.arange(height, dtype=s.dtype)[:, None] - (height - 1) / 2
    cols = jnp.arange(width, dtype=s.dtype)[None, :] - (width - 1) / 2
    above = sharpness * (s - threshold)
    below = sharpness * (-s - threshold)
    soft_pos, soft_neg = jax.nn.sigmoid(above), jax.nn.sigmoid(below)
    soft_positive, soft_negative = jax.nn.sigmoid(sharpness * s), jax.nn.sigmoid(-sharpness * s)

    def total(x):
        return jnp.sum(x, axis=(1, 2))

    flux_pos = total(s * soft_pos)
    flux_neg = total(s * soft_neg)
    # the centroids weigh pixels by |s| times the soft mask, never negatively: s * soft_pos is slightly negative on
    # negative pixels, and a patch whose positive flux those tails cancel would put its centroid anywhere
    magnitude = jnp.abs(s)
    weight_pos, weight_neg = magnitude * soft_pos, magnitude * soft_neg
    safe_pos = jnp.maximum(total(weight_pos), min_flux)
    safe_neg = jnp.maximum(total(weight_neg), min_flux)
    d_row = total(weight_neg * rows) / safe_neg - total(weight_pos * rows) / safe_pos
    d_col = total(weight_neg * cols) / safe_neg - total(weight_pos * cols) / safe_pos
    smooth_abs_d_col = jnp.sqrt(d_col**2 + min_separation**2)
    overlap = _soft_dilation(-jax.nn.softplus(above)) * _soft_dilation(-jax.nn.softplus(below))
    return {
        "tuf": total(magnitude) / pixels,
        "tpf": total(s * soft_positive) / jnp.maximum(total(soft_positive), min_flux),
        "tnf": total(-s * soft_negative) / jnp.maximum(total(soft_negative), min_flux),
        "net_flux": flux_pos + flux_neg,
        "psep": jnp.sqrt(d_row**2 + d_col**2 + min_separation**2) / math.hypot(height, width),
        "tilt": jnp.arctan2(d_row, smooth_abs_d_col),
        "area": total(soft_pos + soft_neg) / pixels,
        "lead_polarity": -d_col,
        "r_value": total(magnitude * overlap),
    }
