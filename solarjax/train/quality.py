"""Sample-quality figures of a generator: KS distances of physics quantities, Frechet distance.

* Kolmogorov-Smirnov distance per physical quantity (`solarjax.physics.quantities`): the largest
  gap between the empirical CDFs of generated and reference patches, in [0, 1]; undefined values
  (NaN, e.g. a patch with one polarity only) are left out on both sides.
* Frechet distance between Gaussians fitted to encoder features of generated and reference
  patches: ``|mu_g - mu_r|^2 + tr(C_g + C_r - 2 (C_g C_r)^(1/2))`` (the FID formula). Until the
  SimSiam encoder exists the encoder is `random_feature_encoder`: a fixed, untrained convolutional
  network (seeded weights), whose features still separate textures and scales; figures are
  comparable only between runs that use the same encoder.

* Realism diagnostics (`realism_diagnostics`, per patch, on Br = 1000 G * s): noise width (standard
  deviation of the quiet pixels, |Br| < 50 G, in G), spectral slope (least-squares slope of log power
  against log k of the radial power spectrum over k = 3-48 cycles per patch), mean gradient magnitude
  (G per pixel), and the share of pixels beyond +-500 G. Against the reference: the KS distance of the
  first three, the ratio of strong-pixel densities, the largest spectral peak ratio at k = 16, 32, 48
  (the harmonics of the 8-pixel period three stride-2 upsamplings leave; 1.0 for a smooth spectrum),
  and the ratio of median Schrijver R. The grid contrast, orientation contrast (small-scale power along the pixel
  axes over the diagonals, `orientation_contrast`) and the largest saturated umbra's diameter are compared by KS
  too. `realism_score` folds these and the mean physics KS into one number in [0, 1]; the border excess and the
  umbra strength are compared by KS outside it.

These figures rank a run's checkpoints (smaller is better).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from solarjax.models import gan as gan_models

Encoder = Callable[[jax.Array], jax.Array]
QuantitiesFn = Callable[[jax.Array], Mapping[str, jax.Array]]


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of the finite values of a and b (NaN if one is empty)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(scipy.stats.ks_2samp(a, b).statistic)


def ks_distances(generated: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """KS distance per quantity present in both dicts of [N] arrays."""
    return {name: ks_distance(generated[name], reference[name]) for name in sorted(generated) if name in reference}


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] (unbiased) of features [N, F], in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, F], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mean_a, cov_a) and N(mean_b, cov_b).

    tr((C_a C_b)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix C_a^(1/2) C_b C_a^(1/2), which has the same spectrum.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(cov_a)
    sqrt_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)))
    mean_term = float(np.sum((mean_a - mean_b) ** 2))
    return mean_term + float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


@functools.lru_cache(maxsize=4)
def random_feature_encoder(seed: int = 0, channels: tuple[int, ...] = (16, 32, 64, 128)) -> Encoder:
    """A fixed random-feature convolutional encoder: images [N, 128, 128, 1] -> features [N, C].

    Layers: 3x3 stride-2 'VALID' convolutions with `channels` outputs and ReLU (128 -> 63 -> 31 ->
    15 -> 7 pixels), He-normal weights drawn from ``jax.random.key(seed)``, no bias; the features
    are the spatial means of the last layer (C = channels[-1]). The same seed gives the same
    encoder on every machine (and, cached, the same jitted function within a process).
    """
    kernels = []
    key = jax.random.key(seed)
    in_channels = 1
    for out_channels in channels:
        key, sub = jax.random.split(key)
        scale = math.sqrt(2.0 / (9 * in_channels))
        kernels.append(scale * jax.random.normal(sub, (3, 3, in_channels, out_channels)))
        in_channels = out_channels
    conv_impl = gan_models.default_conv_impl()

    @jax.jit
    def encode(images: jax.Array) -> jax.Array:
        x = jnp.asarray(images, jnp.float32)
        for kernel in kernels:
            x = jax.nn.relu(gan_models.conv_valid(x, kernel, 2, conv_impl))
        return jnp.mean(x, axis=(1, 2))

    return encode


def default_quantities_fn() -> QuantitiesFn:
    """`solarjax.physics.quantities` (hard threshold, NaN where undefined)."""
    from solarjax import physics

    return physics.quantities


# ------------------------------------------------------------------------------ realism diagnostics
from solarjax.units import GAUSS_PER_UNIT  # noqa: E402  (images hold s = B / 1000 G)

QUIET_LEVEL_GAUSS = 50.0
"""|Br| below this counts as a quiet (noise) pixel."""
STRONG_LEVEL_GAUSS = 500.0
"""|Br| beyond this counts as a strong (spot / umbra) pixel."""
SLOPE_RANGE = (3, 48)
"""Wavenumbers (cycles per patch) of the spectral-slope fit."""
PEAK_WAVENUMBERS = (16, 32, 48)
"""Where three stride-2 upsamplings (an 8-pixel period on 128 pixels) put their harmonics."""
PEAK_NEIGHBOURS = (-2, -1, 1, 2)
"""Offsets of the wavenumbers a peak is compared with."""
UMBRA_PIXELS = 16
"""Pixels per patch (the strongest 0.1% of 128 x 128) whose mean |Br| `umbra_strength` takes."""
SATURATED_UMBRA_GAUSS = 950.0
"""`umbra_strength` from which a patch counts as holding a saturated umbra (the data clip at 1000 G, so a KS
distance of the strength itself sees a point mass there that no smooth generator output reaches exactly)."""
BORDER_WIDTH = 2
"""Pixels of the outer frame `border_excess` compares (a zero-padding rim is 1-2 pixels wide)."""
BORDER_BAND = (4, 12)
"""The band (first and last pixel distance from the edge) the frame is compared with."""
GRID_PERIOD = 8
"""Pixel period whose phases `grid_phase_energy` compares: three 2x upsamplings repeat every 2, 4 and 8 pixels."""
SPECTRUM_BAND_EDGES = (1, 2, 3, 5, 8, 13, 22, 38, 65)
"""Wavenumber bands [edge_i, edge_i+1) (cycles per 128-px patch; about 1.6x wide) of `band_power`: from the
patch's layout (k = 1) to the pixel scale (k = 38-64). As in `radial_power_spectrum`, the rings beyond k = 64 (the
FFT's corners, diagonal wavelengths under 2 px) are in no band."""
PER_PATCH_DIAGNOSTICS = (
    "noise_width_gauss",
    "spectral_slope",
    "mean_gradient_gauss_per_pixel",
    "strong_pixel_fraction",
    "border_excess_gauss",
    "umbra_strength_gauss",
    "umbra_diameter_px",
    "grid_contrast",
    "orientation_contrast",
)
KS_DIAGNOSTICS = tuple(name for name in PER_PATCH_DIAGNOSTICS if name != "strong_pixel_fraction")
"""The per-patch diagnostics compared by a KS distance (the strong-pixel fraction is compared as a density ratio)."""

SCORED_KS_DIAGNOSTICS = (
    "noise_width_gauss",
    "spectral_slope",
    "mean_gradient_gauss_per_pixel",
    "grid_contrast",
    "orientation_contrast",
    "umbra_diameter_px",
)
"""The diagnostics whose KS distance is a term of `realism_score` (each has a target in `REALISM_TARGETS`); the
border excess and umbra strength are reported, not scored."""


def field_gauss(images) -> np.ndarray:
    """[N, H, W] float64 Br in G of normalised patches [N, H, W] or [N, H, W, 1]."""
    images = np.asarray(images, np.float64)
    return (images[..., 0] if images.ndim == 4 else images) * GAUSS_PER_UNIT


def noise_width(images, quiet_gauss: float = QUIET_LEVEL_GAUSS) -> np.ndarray:
    """[N] standard deviation (ddof 1) of the pixels with |Br| < quiet_gauss, in G; NaN below 2 such pixels."""
    field = field_gauss(images)
    quiet = np.abs(field) < quiet_gauss
    counts = quiet.sum(axis=(1, 2))
    mean = np.where(quiet, field, 0.0).sum(axis=(1, 2)) / np.maximum(counts, 1)
    squares = np.where(quiet, (field - mean[:, None, None]) ** 2, 0.0).sum(axis=(1, 2))
    return np.where(counts >= 2, np.sqrt(squares / np.maximum(counts - 1, 1)), np.nan)


def quiet_neighbour_correlation(images, quiet_gauss: float = QUIET_LEVEL_GAUSS) -> np.ndarray:
    """[N] lag-1 autocorrelation of the quiet pixels (|Br| < quiet_gauss) of each patch, over the horizontal and
    vertical neighbour pairs that are both quiet, about the patch's quiet mean; NaN below 2 such pairs."""
    field = field_gauss(images)
    quiet = np.abs(field) < quiet_gauss
    counts = quiet.sum(axis=(1, 2))
    mean = np.where(quiet, field, 0.0).sum(axis=(1, 2)) / np.maximum(counts, 1)
    anomaly = np.where(quiet, field - mean[:, None, None], 0.0)
    variance = (anomaly**2).sum(axis=(1, 2)) / np.maximum(counts, 1)
    products, pairs = np.zeros(len(field)), np.zeros(len(field))
    for a, b, both in (
        (anomaly[:, :, 1:], anomaly[:, :, :-1], quiet[:, :, 1:] & quiet[:, :, :-1]),
        (anomaly[:, 1:], anomaly[:, :-1], quiet[:, 1:] & quiet[:, :-1]),
    ):
        products += np.where(both, a * b, 0.0).sum(axis=(1, 2))
        pairs += both.sum(axis=(1, 2))
    covariance = products / np.maximum(pairs, 1)
    return np.where((pairs >= 2) & (variance > 0), covariance / np.where(variance > 0, variance, 1.0), np.nan)


def radial_power_spectrum(images) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged power spectrum of each square patch.

    Args:
      images: [N, H, H(, 1)] normalised patches.

    Returns:
      (k [H/2] integer wavenumbers 1..H/2 in cycles per patch, power [N, H/2]: the mean of
      |FFT(Br - mean Br)|^2 / H^2 over the ring |k_vec| rounded to k, in G^2).
    """
    field = field_gauss(images)
    size = field.shape[1]
    if field.shape[2] != size:
        raise ValueError(f"radial_power_spectrum needs square patches, got {field.shape[1:]}")
    spectrum = np.abs(np.fft.fft2(field - field.mean(axis=(1, 2), keepdims=True))) ** 2 / size**2
    frequencies = np.fft.fftfreq(size) * size
    ring = np.rint(np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))).astype(int).ravel()
    k = np.arange(1, size // 2 + 1)
    counts = np.bincount(ring, minlength=k[-1] + 1)[k]
    flat = spectrum.reshape(len(spectrum), -1)
    power = np.stack([np.bincount(ring, weights=row, minlength=k[-1] + 1)[k] for row in flat]) / counts
    return k, power


ORIENTATION_BAND_EDGES = (8, 13, 22, 38, 65)
"""The bands of `orientation_contrast`: the small scales (wavelengths 2-16 px) where upsampling and convolution
artefacts leave a cross-hatch."""
SECTOR_HALF_WIDTH_DEGREES = 15.0
"""Half width of `band_weights`' orientation sectors about the axes (0 and 90 degrees) and the diagonals (45, 135)."""
SECTORS = ("all", "axis", "diagonal")


def band_weights(size: int, edges: tuple[int, ...] = SPECTRUM_BAND_EDGES, sector: str = "all") -> np.ndarray:
    """[size * size, len(edges) - 1] float32 weights that turn a flattened |FFT|^2 / size^2 of a size x size patch
    into `band_power`: each band's mean over its integer rings k (edges[i] <= k < edges[i+1], k <= size / 2) of the
    ring's mean power, `radial_power_spectrum`'s rings. ``sector`` (`SECTORS`): the whole ring, or only its
    wavevectors within `SECTOR_HALF_WIDTH_DEGREES` of an axis or of a diagonal."""
    if sector not in SECTORS:
        raise ValueError(f"sector must be one of {SECTORS}, got {sector!r}")
    frequencies = np.fft.fftfreq(size) * size
    rows, cols = np.meshgrid(frequencies, frequencies, indexing="ij")
    ring = np.rint(np.hypot(rows, cols)).astype(int).ravel()
    angle = (np.degrees(np.arctan2(rows, cols)) % 90.0).ravel()
    inside = {
        "all": np.ones_like(angle, bool),
        "axis": (angle < SECTOR_HALF_WIDTH_DEGREES) | (angle > 90.0 - SECTOR_HALF_WIDTH_DEGREES),
        "diagonal": np.abs(angle - 45.0) < SECTOR_HALF_WIDTH_DEGREES,
    }[sector]
    counts = np.bincount(ring[inside], minlength=ring.max() + 1)
    weights = np.zeros((size * size, len(edges) - 1), np.float32)
    for band, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        rings = [k for k in range(low, min(high, size // 2 + 1)) if counts[k]]
        if not rings:
            raise ValueError(f"band [{low}, {high}) holds no wavenumber of a {size}-px patch in sector {sector!r}")
        for k in rings:
            weights[(ring == k) & inside, band] = 1.0 / (counts[k] * len(rings))
    return weights


def _centred_power(field, xp):
    """[N, H * W] |FFT|^2 / (H W) of square fields [N, H, W] minus their means."""
    size = field.shape[1]
    centred = field - xp.mean(field, axis=(1, 2), keepdims=True)
    transform = xp.fft.fft2(centred)
    return ((transform.real**2 + transform.imag**2) / size**2).reshape(field.shape[0], -1)


def _weigh(spectrum, weights: np.ndarray, xp):
    if xp is np:
        return spectrum @ weights
    return xp.matmul(spectrum, xp.asarray(weights), precision="highest")  # not TF32 / bf16


def band_power(field, edges: tuple[int, ...] = SPECTRUM_BAND_EDGES, xp=np):
    """[N, bands] mean power of square fields [N, H, H] (their units squared) in the wavenumber bands ``edges``
    (`band_weights`), of the field minus its mean. `xp`: numpy or jax.numpy (differentiable)."""
    return _weigh(_centred_power(field, xp), band_weights(field.shape[1], edges), xp)


def sector_power(field, edges: tuple[int, ...] = ORIENTATION_BAND_EDGES, xp=np):
    """[N, 2, bands] mean power of square fields [N, H, H] minus their means, band by band, in the wavevectors
    along the axes ([:, 0]) and along the diagonals ([:, 1]) (`band_weights`' sectors). `xp`: numpy or jax.numpy."""
    size = field.shape[1]
    weights = np.concatenate([band_weights(size, edges, "axis"), band_weights(size, edges, "diagonal")], axis=1)
    return _weigh(_centred_power(field, xp), weights, xp).reshape(field.shape[0], 2, len(edges) - 1)


def orientation_contrast(field, edges: tuple[int, ...] = ORIENTATION_BAND_EDGES, xp=np):
    """[N, bands] log10 of the power along the axes over the power along the diagonals (`sector_power`), band by
    band, of square fields [N, H, H]. 0 for an isotropic field; > 0 for a cross-hatch aligned with the pixel grid.
    A patch's edges (the FFT wraps it around) add some axis power to any real magnetogram. `xp`: numpy or
    jax.numpy (differentiable)."""
    power = sector_power(field, edges, xp) + 1e-20
    return xp.log10(power[:, 0]) - xp.log10(power[:, 1])


def spectral_slope(k: np.ndarray, power: np.ndarray, k_range: tuple[int, int] = SLOPE_RANGE) -> np.ndarray:
    """[N] least-squares slope of log10 power [N, K] against log10 k [K] over k in k_range (NaN if any power is 0)."""
    chosen = (k >= k_range[0]) & (k <= k_range[1])
    x = np.log10(k[chosen])
    with np.errstate(divide="ignore"):
        y = np.log10(power[:, chosen])
    x = x - x.mean()
    with np.errstate(invalid="ignore"):
        slopes = (y - y.mean(axis=1, keepdims=True)) @ x / (x @ x)
    return np.where(np.isfinite(slopes), slopes, np.nan)


def mean_gradient(images) -> np.ndarray:
    """[N] mean over pixels of |grad Br| by central differences (one-sided at the edges), in G per pixel."""
    rows, cols = np.gradient(field_gauss(images), axis=(1, 2))
    return np.hypot(rows, cols).mean(axis=(1, 2))


def strong_pixel_fraction(images, strong_gauss: float = STRONG_LEVEL_GAUSS) -> np.ndarray:
    """[N] share of pixels with |Br| > strong_gauss."""
    return (np.abs(field_gauss(images)) > strong_gauss).mean(axis=(1, 2))


def umbra_strength(images, pixels: int = UMBRA_PIXELS) -> np.ndarray:
    """[N] mean |Br| (G) of each patch's `pixels` strongest pixels: the 1000 G clip where it holds a saturated
    umbra, a few hundred G where it holds only plage."""
    strength = np.abs(field_gauss(images)).reshape(len(images), -1)
    return np.partition(strength, -pixels, axis=1)[:, -pixels:].mean(axis=1)


def umbra_diameter(images, level_gauss: float = SATURATED_UMBRA_GAUSS) -> np.ndarray:
    """[N] equivalent diameter 2 sqrt(A / pi) (px) of each patch's largest 4-connected region of |Br| at or above
    `level_gauss` (A its area in pixels; 0 where there is none): the size of its largest saturated umbra."""
    from scipy import ndimage

    diameters = np.zeros(len(images))
    for index, strong in enumerate(np.abs(field_gauss(images)) >= level_gauss):
        labels, count = ndimage.label(strong)
        if count:
            diameters[index] = 2.0 * math.sqrt(np.bincount(labels.ravel())[1:].max() / math.pi)
    return diameters


def border_masks(shape: tuple[int, int], width: int = BORDER_WIDTH, band: tuple[int, int] = BORDER_BAND):
    """``(frame, band)`` boolean masks [H, W]: the outer `width`-pixel frame, and the pixels `band[0]` to
    `band[1]` - 1 in from the nearest edge."""
    height, width_px = shape
    distance = np.minimum.outer(
        np.minimum(np.arange(height), np.arange(height)[::-1]),
        np.minimum(np.arange(width_px), np.arange(width_px)[::-1]),
    )
    return distance < width, (distance >= band[0]) & (distance < band[1])


def border_excess(images, width: int = BORDER_WIDTH, band: tuple[int, int] = BORDER_BAND) -> np.ndarray:
    """[N] mean |Br| of the outer `width`-pixel frame minus that of the band `band` pixels in, in G.

    About 0 for a field with no edge (statistically the same near and at the border); a generator whose
    convolutions zero-pad draws a bright (or dark) rim, a positive (or negative) excess.
    """
    field = np.abs(field_gauss(images))
    frame, inner = border_masks(field.shape[1:], width, band)
    return field[:, frame].mean(axis=1) - field[:, inner].mean(axis=1)


def phase_energy(field, period: int = GRID_PERIOD, xp=np):
    """[N, period] mean squared difference of neighbouring pixels of fields [N, H, W] (in their own units squared),
    horizontal and vertical pairs pooled, by the position mod `period` of the pair's first pixel (the first
    ``period * floor((H - 1) / period)`` pairs of each row and column). `xp`: numpy or jax.numpy."""
    n, height, width = field.shape
    pairs, rows = (width - 1) // period * period, (height - 1) // period * period
    across_columns = (xp.diff(field, axis=2)[:, :, :pairs] ** 2).reshape(n, height, -1, period)
    across_rows = (xp.diff(field, axis=1)[:, :rows] ** 2).reshape(n, -1, period, width)
    return (xp.mean(across_columns, axis=(1, 2)) + xp.mean(across_rows, axis=(1, 3))) / 2


def grid_phase_energy(images, period: int = GRID_PERIOD) -> np.ndarray:
    """[N, period] `phase_energy` of patches in G^2.

    A field whose statistics do not depend on position (any magnetogram) has equal energies at every phase; a
    generator that upsamples by repeating pixels draws blocks, whose edges fall on some phases and not others."""
    return phase_energy(field_gauss(images), period)


def grid_contrast(images, period: int = GRID_PERIOD) -> np.ndarray:
    """[N] the largest over the smallest of a patch's `grid_phase_energy`: about 1 for a magnetogram (a little
    above, from its noise), 2-4 for a generator's block texture; inf where a phase has no energy at all, NaN for a
    constant patch."""
    energy = grid_phase_energy(images, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        return energy.max(axis=1) / energy.min(axis=1)


def spectral_peak_ratios(
    k: np.ndarray, mean_power: np.ndarray, peaks: tuple[int, ...] = PEAK_WAVENUMBERS
) -> dict[int, float]:
    """Power at each peak wavenumber over the geometric mean of its neighbours (`PEAK_NEIGHBOURS`).

    Args:
      k: [K] wavenumbers; mean_power: [K] a set's mean radial spectrum.

    Returns:
      peak k -> ratio (about 1 for a smooth spectrum, >> 1 for a periodic texture).
    """
    position = {int(v): i for i, v in enumerate(k)}
    ratios = {}
    for peak in peaks:
        neighbours = [mean_power[position[peak + d]] for d in PEAK_NEIGHBOURS if peak + d in position]
        with np.errstate(divide="ignore"):
            ratios[peak] = float(mean_power[position[peak]] / np.exp(np.mean(np.log(neighbours))))
    return ratios


def realism_diagnostics(images) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The per-patch diagnostics of a batch and its radial power spectra.

    Args:
      images: [N, 128, 128(, 1)], s = B / 1000 G.

    Returns:
      ({name: [N]} for `PER_PATCH_DIAGNOSTICS`, k [64], power [N, 64] in G^2).
    """
    k, power = radial_power_spectrum(images)
    return (
        {
            "noise_width_gauss": noise_width(images),
            "spectral_slope": spectral_slope(k, power),
            "mean_gradient_gauss_per_pixel": mean_gradient(images),
            "strong_pixel_fraction": strong_pixel_fraction(images),
            "border_excess_gauss": border_excess(images),
            "umbra_strength_gauss": umbra_strength(images),
            "umbra_diameter_px": umbra_diameter(images),
            "grid_contrast": grid_contrast(images),
            "orientation_contrast": np.mean(orientation_contrast(field_gauss(images)), axis=1),
        },
        k,
        power,
    )


@dataclasses.dataclass(frozen=True)
class ImageSummary:
    """What the quality figures need of a set of patches.

    Attributes:
      quantities: name -> [N] physical quantity (NaN where undefined).
      features: [N, F] encoder features.
      diagnostics: name -> [N] realism diagnostic (`PER_PATCH_DIAGNOSTICS`); empty if not computed.
      wavenumbers: [K] and mean_power [K]: the set's mean radial power spectrum (G^2); None if not computed.
    """

    quantities: dict[str, np.ndarray]
    features: np.ndarray
    diagnostics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    wavenumbers: np.ndarray | None = None
    mean_power: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.features.shape[0])


SUMMARY_BATCH = 250
"""Patches per encoder and quantities call of `summarise`: the batches it is given are regrouped into blocks of this
many, and the last into the smallest `tail_size` block that holds it (zeros after its rows, whose results are
dropped), so any mix of batch sizes compiles one program per block size, and a summary of 8 patches does not pay for
250."""


def tail_size(count: int, size: int) -> int:
    """Rows of the block that holds a last ``count`` < ``size`` rows: `solarjax.models.gan.batch_bucket` (the
    smallest power of two >= max(count, 8)), at most ``size``, so a few block sizes serve every count."""
    return min(size, gan_models.batch_bucket(int(count)))


def fixed_blocks(batches: Iterable[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(block float32, count): the rows of ``batches`` in order, ``size`` at a time; the last block holds ``count``
    < ``size`` rows and zeros after them up to `tail_size` rows. Holds one batch and fewer than ``size`` rows left of
    the one before at a time."""
    tail = None  # fewer than `size` rows not yet in a block
    for images in batches:
        images = np.asarray(images, np.float32)
        start = 0
        if tail is not None and len(tail) + len(images) >= size:
            start = size - len(tail)
            yield np.concatenate([tail, images[:start]]), size
            tail = None
        elif tail is not None:
            tail, start = np.concatenate([tail, images]), len(images)
        while start + size <= len(images):
            yield images[start : start + size], size
            start += size
        if start < len(images):
            tail = images[start:]
    if tail is not None and len(tail):
        block = np.zeros((tail_size(len(tail), size), *tail.shape[1:]), np.float32)
        block[: len(tail)] = tail
        yield block, len(tail)


def summarise(
    batches: Iterable[np.ndarray], encoder: Encoder, quantities_fn: QuantitiesFn | None = None
) -> ImageSummary:
    """Quantities, features and realism diagnostics of image batches [B, 128, 128, 1] (consumed one at a time; the
    encoder and the quantities see blocks of `SUMMARY_BATCH`, the last of `tail_size`)."""
    quantities_fn = quantities_fn or default_quantities_fn()
    features, quantities, diagnostics, power_sum, wavenumbers = [], {}, {}, 0.0, None
    for block, count in fixed_blocks(batches, SUMMARY_BATCH):
        images = block[:count]
        features.append(np.asarray(encoder(jnp.asarray(block)))[:count])
        for name, values in quantities_fn(jnp.asarray(block)).items():
            quantities.setdefault(name, []).append(np.asarray(values)[:count])
        per_patch, wavenumbers, power = realism_diagnostics(images)
        for name, values in per_patch.items():
            diagnostics.setdefault(name, []).append(values)
        power_sum = power_sum + power.sum(axis=0)
    if not features:
        raise ValueError("summarise got no image batches")
    features = np.concatenate(features)
    return ImageSummary(
        {name: np.concatenate(v) for name, v in quantities.items()},
        features,
        {name: np.concatenate(v) for name, v in diagnostics.items()},
        wavenumbers,
        power_sum / len(features),
    )


def realism_figures(generated: ImageSummary, reference: ImageSummary) -> dict[str, float]:
    """Realism of generated against reference patches (both summarised with diagnostics).

    Returns:
      ``realism/ks_<diagnostic>`` for each of `KS_DIAGNOSTICS`: noise width, spectral slope, mean gradient,
      border excess (`border_excess`: the frame zero padding draws), umbra strength (`umbra_strength`: the
      strongest pixels), umbra diameter (`umbra_diameter`: the largest saturated region's size), grid contrast
      (`grid_contrast`: block texture) and orientation contrast (the mean over its bands of `orientation_contrast`:
      a cross-hatch); `SCORED_KS_DIAGNOSTICS` are in `realism_score`;
      ``realism/saturated_share_generated`` and ``..._reference``: the share of patches whose umbra strength reaches `SATURATED_UMBRA_GAUSS`;
      ``realism/strong_pixel_ratio`` (generated / reference density of pixels beyond +-500 G);
      ``realism/peak_ratio_k<k>`` for k in `PEAK_WAVENUMBERS` and ``realism/peak_ratio_max``;
      ``realism/r_median_ratio`` (generated / reference median of the physics quantity 'r_value',
      when present); medians ``realism/<diagnostic>_generated`` and ``..._reference``.
    """
    if not generated.diagnostics or not reference.diagnostics:
        raise ValueError("realism_figures needs summaries with diagnostics (made by `summarise`)")
    figures = {}
    for name in KS_DIAGNOSTICS:
        figures[f"realism/ks_{name}"] = ks_distance(generated.diagnostics[name], reference.diagnostics[name])
    for name in PER_PATCH_DIAGNOSTICS:
        for label, summary in (("generated", generated), ("reference", reference)):
            values = summary.diagnostics[name]
            finite = values[np.isfinite(values)]
            figures[f"realism/{name}_{label}"] = float(np.median(finite)) if finite.size else math.nan
    saturated = [
        float(np.mean(s.diagnostics["umbra_strength_gauss"] >= SATURATED_UMBRA_GAUSS)) for s in (generated, reference)
    ]
    figures["realism/saturated_share_generated"], figures["realism/saturated_share_reference"] = saturated
    strong_generated = float(np.mean(generated.diagnostics["strong_pixel_fraction"]))
    strong_reference = float(np.mean(reference.diagnostics["strong_pixel_fraction"]))
    figures["realism/strong_pixel_ratio"] = strong_generated / strong_reference if strong_reference > 0 else math.nan
    peaks = spectral_peak_ratios(generated.wavenumbers, generated.mean_power)
    figures.update({f"realism/peak_ratio_k{k}": v for k, v in peaks.items()})
    figures["realism/peak_ratio_max"] = max(peaks.values())
    if "r_value" in generated.quantities and "r_value" in reference.quantities:
        r_generated, r_reference = (np.asarray(s.quantities["r_value"], np.float64) for s in (generated, reference))
        r_generated, r_reference = r_generated[np.isfinite(r_generated)], r_reference[np.isfinite(r_reference)]
        figures["realism/r_median_ratio"] = (
            float(np.median(r_generated) / np.median(r_reference))
            if r_generated.size and r_reference.size and np.median(r_reference) > 0
            else math.nan
        )
    return figures


def realism_score(figures: Mapping[str, float]) -> float:
    """One number in [0, 1] (0: indistinguishable by these figures) from `quality_figures`.

    The mean of ten terms, each in [0, 1], one per target of `REALISM_TARGETS`: the KS distances of noise width,
    spectral slope, gradient, grid contrast, orientation contrast and umbra diameter; the mean physics KS
    (``ks_mean``); ``min(1, |log2 strong_pixel_ratio| / 2)`` (a 2x density error counts 0.5);
    ``min(1, max(0, peak_ratio_max - 1))`` (a 1.5x peak counts 0.5); ``min(1, |log2 r_median_ratio| / 2)``
    (median Schrijver R 2x off counts 0.5; left out, nine terms, when the figures have no R ratio at all, as with
    a quantities function without 'r_value'). An undefined or missing term counts as 1.
    """

    def bounded(value):
        return 1.0 if value is None or not math.isfinite(value) else min(1.0, max(0.0, float(value)))

    def log2_error(ratio):
        return abs(math.log2(ratio)) / 2 if ratio is not None and math.isfinite(ratio) and ratio > 0 else math.nan

    terms = [figures.get(f"realism/ks_{name}") for name in SCORED_KS_DIAGNOSTICS]
    terms += [
        figures.get("ks_mean"),
        log2_error(figures.get("realism/strong_pixel_ratio", math.nan)),
        figures.get("realism/peak_ratio_max", math.nan) - 1.0,
    ]
    if "realism/r_median_ratio" in figures:
        terms.append(log2_error(figures["realism/r_median_ratio"]))
    return float(np.mean([bounded(term) for term in terms]))


def quality_figures(generated: ImageSummary, reference: ImageSummary) -> dict[str, float]:
    """``{'frechet', 'ks_mean', 'ks/<quantity>' ...}`` of generated against reference patches, and the
    `realism_figures` with their ``realism_score`` when both summaries carry diagnostics.

    ``ks_mean`` averages the KS distances that are defined (NaN if none is).
    """
    mean_g, cov_g = gaussian_fit(generated.features)
    mean_r, cov_r = gaussian_fit(reference.features)
    ks = ks_distances(generated.quantities, reference.quantities)
    defined = [v for v in ks.values() if math.isfinite(v)]
    figures = {
        "frechet": frechet_distance(mean_g, cov_g, mean_r, cov_r),
        "ks_mean": float(np.mean(defined)) if defined else math.nan,
    }
    figures.update({f"ks/{name}": value for name, value in ks.items()})
    if generated.diagnostics and reference.diagnostics:
        figures.update(realism_figures(generated, reference))
        figures["realism_score"] = realism_score(figures)
    return figures


def generated_batches(
    generate: Callable[[jax.Array], jax.Array], num_samples: int, batch_size: int, latent_dim: int, key: jax.Array
) -> Iterable[np.ndarray]:
    """Yields `num_samples` generated patches in batches of `batch_size` (last one padded then cut).

    Args:
      generate: z [batch_size, latent_dim] -> images [batch_size, 128, 128, 1] (one jit shape).
      num_samples: total patches.
      batch_size: latents per call.
      latent_dim: size of z.
      key: PRNG key; z ~ N(0, I) drawn from it, so equal keys give equal samples.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples ({num_samples}) and batch_size ({batch_size}) must be >= 1")
    for start in range(0, num_samples, batch_size):
        z = jax.random.normal(jax.random.fold_in(key, start), (batch_size, latent_dim))
        yield np.asarray(generate(z))[: min(batch_size, num_samples - start)]


REALISM_TARGETS = {
    "realism/ks_noise_width_gauss": ("KS of noise width", (0.0, 0.25)),
    "realism/ks_spectral_slope": ("KS of spectral slope (k = 3-48)", (0.0, 0.25)),
    "realism/ks_mean_gradient_gauss_per_pixel": ("KS of mean gradient magnitude", (0.0, 0.25)),
    "realism/strong_pixel_ratio": ("pixel density beyond +-500 G, generated / data", (0.5, 2.0)),
    "realism/peak_ratio_max": ("largest spectral peak at k = 16, 32, 48 over its neighbours", (0.0, 1.5)),
    "ks_mean": ("mean KS of the physics quantities", (0.0, 0.15)),
    "realism/r_median_ratio": ("median Schrijver R, generated / data", (0.75, 1.25)),
    "realism/ks_grid_contrast": ("KS of grid contrast (the upsampling's block texture)", (0.0, 0.25)),
    "realism/ks_orientation_contrast": ("KS of orientation contrast (a cross-hatch along the pixel grid)", (0.0, 0.25)),
    "realism/ks_umbra_diameter_px": ("KS of the largest saturated umbra's diameter (px)", (0.0, 0.25)),
}
"""figure -> (what it is, (lowest, highest) value a data-like generator has)."""

_MEDIANS = {
    "realism/ks_noise_width_gauss": "noise_width_gauss",
    "realism/ks_spectral_slope": "spectral_slope",
    "realism/ks_mean_gradient_gauss_per_pixel": "mean_gradient_gauss_per_pixel",
    "realism/strong_pixel_ratio": "strong_pixel_fraction",
    "realism/ks_grid_contrast": "grid_contrast",
    "realism/ks_orientation_contrast": "orientation_contrast",
    "realism/ks_umbra_diameter_px": "umbra_diameter_px",
}


def realism_table(figures: Mapping[str, float]) -> dict[str, dict]:
    """`quality_figures` against `REALISM_TARGETS`: what -> {value, target, met, data median,
    generated median} (medians where the figure compares a per-patch diagnostic)."""
    table = {}
    for key, (label, (low, high)) in REALISM_TARGETS.items():
        value = figures.get(key, math.nan)
        value = math.nan if value is None else float(value)
        row = {
            "value": value,
            "target": f"{low:g}-{high:g}",
            "met": bool(math.isfinite(value) and low <= value <= high),
        }
        if key in _MEDIANS:
            row["data_median"] = figures.get(f"realism/{_MEDIANS[key]}_reference", math.nan)
            row["generated_median"] = figures.get(f"realism/{_MEDIANS[key]}_generated", math.nan)
        table[label] = row
    return table
