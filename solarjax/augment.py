"""Physics-aware augmentations of magnetogram (and AIA EUV) patches, pure JAX with explicit PRNG keys.

Every augmentation is a pair of pure functions: `sample(key, recipe) -> params` draws its random
scalars (angle, shift, zoom, noise level), and `apply(image, params, noise) -> image` transforms one
patch, given a standard-normal field `noise` of the image's shape that it may use (void filling,
additive noise; one field per applied augmentation, so the PRNG runs once per slot).
`augment(key, image, recipe)` draws one to k of a recipe's augmentations in a random order and
applies them, jit-able and vmap-able (the training step calls `augment_batch` on device; the host
only feeds raw batches).

Images are one patch [H, W, C] (C = 1 for Br) in the pipeline's units, s = B / 1000 G in [-1, 1].
Polarity flip is negation (-s), never 1 - s. Geometric conventions: pixel (row, col); row 0 is the
first array row, displayed at the bottom (origin='lower', north up); a positive rotation angle
turns the field counterclockwise on that display, i.e. the vector from the positive to the negative
centroid gains that angle, so `physics` tilt grows by it (modulo the arcsin fold).

Each augmentation declares its action on each physics quantity (`solarjax.physics.QUANTITY_NAMES`):

  'invariant'      q' = q
  'sign_flip'      q' = -q
  'swap_tpf_tnf'   tpf' = tnf and tnf' = tpf
  'scales_zoom'    q' = zoom * q         (lengths: polarity separation, leading-polarity offset)
  'scales_zoom2'   q' = zoom**2 * q      (areas and fluxes summed over pixels)
  'rotates'        tilt and leading-polarity offset follow the centroid vector turned by the angle
  'changes'        no claim

`predict_quantities` turns the declarations into numbers. They hold exactly (to float rounding) for
the exact augmentations (flips, polarity flips, integer translation) and within interpolation error
for the resampling ones (rotation, zoom, blur) and for additive noise, provided that the field
inside the frame stays inside it (margin >= the largest shift) and void filling adds no noise; the
void noise is a separate, declared model of the quiet Sun (see `Recipe.fill_noise_std`).

EUV patches (SDO/AIA, recipe 'euv'). Images are [H, W, C] with one channel per wavelength of
`Recipe.wavelengths`, each normalised by `solarjax.data.aia_prep.normalise`:
y = asinh(x / a_c) / S_c with S_c = asinh(x_max_c / a_c), x in DN/s, clipped to [0, 1]. The
photometric augmentations act on the physical intensity x through that map, exactly:
'gain' multiplies x by a per-channel factor g_c (x -> g_c x is y -> asinh(g_c sinh(S_c y)) / S_c;
a_c cancels), 'photon_noise' adds Poisson-like noise of variance q x on x DN/s (in units of a_c
the signal u = x / a_c = sinh(S_c y) gets u + sqrt(q u / a_c) n). Both clip to [0, 1] as the normalisation
does, so a saturated pixel (x >= x_max_c) stays saturated under a gain above 1 and maps to a lower
bound of its true value under a gain below 1; clipping at 0 also shrinks the noise of pixels whose
signal is within a few noise standard deviations of zero. Geometric augmentations (rotation,
translation, zoom, flips) move pixels as for Br; the 'euv' recipe fills uncovered pixels with 0
(no emission) and has no polarity flip (intensities are not signed).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from solarjax.physics import QUANTITY_NAMES

Params = dict[str, jax.Array]

INVARIANT = "invariant"
SIGN_FLIP = "sign_flip"
SWAP_TPF_TNF = "swap_tpf_tnf"
SCALES_ZOOM = "scales_zoom"
SCALES_ZOOM2 = "scales_zoom2"
ROTATES = "rotates"
CHANGES = "changes"
ACTIONS = (INVARIANT, SIGN_FLIP, SWAP_TPF_TNF, SCALES_ZOOM, SCALES_ZOOM2, ROTATES, CHANGES)

HMI_BR_NOISE = 0.01  # rms of quiet-Sun HMI Br in CEA SHARPs near disc centre, ~10 G, in units of 1000 G


# ------------------------------------------------------------------------------------------ recipe
@dataclasses.dataclass(frozen=True)
class Recipe:
    """Which augmentations a view gets, how likely each is, and their ranges (JSON-serialisable).

    A view applies `count ~ Uniform{min_ops..max_ops}` augmentations: the first `count` of a random
    permutation of `augmentations`, in that order; each of those is applied with its probability
    (1.0 everywhere reproduces the paper: one to seven of its seven augmentations, random order).

    Attributes:
      name: the recipe's name, stored with the run.
      augmentations: names from `AUGMENTATIONS`, each at most once.
      probabilities: per augmentation, the chance it is applied when drawn (same length).
      min_ops, max_ops: the range of the number drawn per view (1 <= min_ops <= max_ops <= len).
      rotation_degrees: rotation angle drawn uniformly in [-rotation_degrees, +rotation_degrees].
      translation_pixels: integer shift per axis drawn uniformly in [-translation_pixels, +...].
      zoom_range: (min, max) magnification drawn uniformly; > 1 magnifies (the field grows).
      noise_std_range: (min, max) rms of the additive Gaussian noise, normalised units (0.01 = 10 G).
      fill_noise_std: rms of the quiet-Sun noise put where a geometric transform uncovers the frame
        (zero field plus noise, never a smear of the edge), normalised units.
      wavelengths: EUV recipes: the wavelength (Angstrom) of each image channel, in order; fixes
        the normalisation constants of 'gain' and 'photon_noise' (empty for Br).
      gain_range: (min, max) of the per-channel gain g, drawn log-uniformly (1/g as likely as g).
      photon_noise_range: (min, max) of q in DN/s, drawn uniformly: noise variance q * x in
        (DN/s)^2 on a signal of x DN/s, the same q for every channel. Shot noise of photon counts
        gives q = (DN per photon) / (exposure time): about 0.56 (171), 0.5 (193) and 0.3 (211)
        DN/s at full resolution and nominal exposure, divided by f^2 after an f x f block mean.
    """

    name: str
    augmentations: tuple[str, ...]
    probabilities: tuple[float, ...]
    min_ops: int = 1
    max_ops: int = 1
    rotation_degrees: float = 20.0
    translation_pixels: int = 10
    zoom_range: tuple[float, float] = (0.8, 1.2)
    noise_std_range: tuple[float, float] = (0.0, 2 * HMI_BR_NOISE)
    fill_noise_std: float = HMI_BR_NOISE
    wavelengths: tuple[int, ...] = ()
    gain_range: tuple[float, float] = (0.8, 1.25)
    photon_noise_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        unknown = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"recipe {self.name!r}: unknown augmentations {unknown}; known: {sorted(AUGMENTATIONS)}")
        if not self.augmentations or len(set(self.augmentations)) != len(self.augmentations):
            raise ValueError(
                f"recipe {self.name!r}: augmentations must be non-empty and distinct, got {self.augmentations}"
            )
        if len(self.probabilities) != len(self.augmentations):
            raise ValueError(
                f"recipe {self.name!r}: {len(self.probabilities)} probabilities for "
                f"{len(self.augmentations)} augmentations"
            )
        if any(not 0.0 <= p <= 1.0 for p in self.probabilities):
            raise ValueError(f"recipe {self.name!r}: probabilities must lie in [0, 1], got {self.probabilities}")
        if not 1 <= self.min_ops <= self.max_ops <= len(self.augmentations):
            raise ValueError(
                f"recipe {self.name!r}: need 1 <= min_ops <= max_ops <= {len(self.augmentations)}, "
                f"got min_ops={self.min_ops}, max_ops={self.max_ops}"
            )
        if not (0 < self.zoom_range[0] <= self.zoom_range[1]):
            raise ValueError(f"recipe {self.name!r}: zoom_range must be 0 < min <= max, got {self.zoom_range}")
        if not (0 <= self.noise_std_range[0] <= self.noise_std_range[1]):
            raise ValueError(
                f"recipe {self.name!r}: noise_std_range must be 0 <= min <= max, got {self.noise_std_range}"
            )
        if self.rotation_degrees < 0 or self.translation_pixels < 0 or self.fill_noise_std < 0:
            raise ValueError(f"recipe {self.name!r}: rotation, translation and fill noise must be >= 0")
        if not (0 < self.gain_range[0] <= self.gain_range[1]):
            raise ValueError(f"recipe {self.name!r}: gain_range must be 0 < min <= max, got {self.gain_range}")
        if not (0 <= self.photon_noise_range[0] <= self.photon_noise_range[1]):
            raise ValueError(
                f"recipe {self.name!r}: photon_noise_range must be 0 <= min <= max, got {self.photon_noise_range}"
            )
        photometric = [a for a in self.augmentations if a in EUV_PHOTOMETRIC]
        if photometric and not self.wavelengths:
            raise ValueError(
                f"recipe {self.name!r}: {photometric} need the wavelength of each image channel (Recipe.wavelengths)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON types."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> Recipe:
        """Inverse of `to_dict` (lists become tuples); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - names
        if unknown:
            raise ValueError(f"recipe fields {sorted(unknown)} are not Recipe fields {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


# -------------------------------------------------------------------------------- transformations
def resample(image: jax.Array, inverse_matrix: jax.Array, offset: jax.Array, fill_noise: jax.Array) -> jax.Array:
    """Bilinear resampling through an affine map, voids filled with zero field plus noise.

    Output pixel p = (row, col) takes the input at q = inverse_matrix @ p + offset. Where q falls
    outside the frame, the missing corner weights go to `fill_noise` instead of the edge value, so
    uncovered corners look like quiet Sun. With integer q the result equals the input pixel exactly.

    Args:
      image: [H, W, C].
      inverse_matrix: [2, 2], acting on (row, col).
      offset: [2], pixels.
      fill_noise: [H, W, C] what an uncovered pixel gets (zero field plus noise of the quiet Sun).

    Returns:
      [H, W, C], the image's dtype.
    """
    height, width, _ = image.shape
    rows, cols = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij"
    )
    src_row = inverse_matrix[0, 0] * rows + inverse_matrix[0, 1] * cols + offset[0]
    src_col = inverse_matrix[1, 0] * rows + inverse_matrix[1, 1] * cols + offset[1]
    row0, col0 = jnp.floor(src_row), jnp.floor(src_col)
    frac_row, frac_col = src_row - row0, src_col - col0
    value = jnp.zeros(image.shape, jnp.float32)
    void_weight = jnp.zeros((height, width), jnp.float32)
    for d_row, weight_row in ((0, 1.0 - frac_row), (1, frac_row)):
        for d_col, weight_col in ((0, 1.0 - frac_col), (1, frac_col)):
            r, c = (row0 + d_row).astype(jnp.int32), (col0 + d_col).astype(jnp.int32)
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            weight = weight_row * weight_col
            corner = image[jnp.clip(r, 0, height - 1), jnp.clip(c, 0, width - 1)]
            value = value + jnp.where(inside, weight, 0.0)[..., None] * corner
            void_weight = void_weight + jnp.where(inside, 0.0, weight)
    return (value + void_weight[..., None] * fill_noise).astype(image.dtype)


def _affine_about_centre(
    image: jax.Array, forward: jax.Array, shift: jax.Array, params: Params, noise: jax.Array
) -> jax.Array:
    """Apply p' = forward @ (p - centre) + centre + shift by inverse-mapping resampling."""
    height, width, _ = image.shape
    centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0], jnp.float32)
    inverse = jnp.linalg.inv(forward)
    offset = centre - inverse @ (centre + shift)
    return resample(image, inverse, offset, params["fill_noise_std"] * noise)


def rotation_matrix(angle: jax.Array) -> jax.Array:
    """[2, 2] matrix on (row, col) turning counterclockwise by `angle` radians with row 0 at the bottom."""
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    return jnp.array([[cos, sin], [-sin, cos]], jnp.float32)


def _rotate(image, params, noise):
    return _affine_about_centre(image, rotation_matrix(params["angle"]), jnp.zeros(2, jnp.float32), params, noise)


def _translate(image, params, noise):
    return _affine_about_centre(image, jnp.eye(2, dtype=jnp.float32), params["shift"], params, noise)


def _zoom(image, params, noise):
    return _affine_about_centre(
        image, params["zoom"] * jnp.eye(2, dtype=jnp.float32), jnp.zeros(2, jnp.float32), params, noise
    )


def _box_blur_2x2(image, params, noise):
    """Mean over each pixel's 2 x 2 block (itself, the next row, the next col); last row/col repeated."""
    del params, noise
    padded = jnp.pad(image, ((0, 1), (0, 1), (0, 0)), mode="edge")
    return 0.25 * (padded[:-1, :-1] + padded[1:, :-1] + padded[:-1, 1:] + padded[1:, 1:])


def _hflip(image, params, noise):
    del params, noise
    return jnp.flip(image, axis=1)


def _vflip(image, params, noise):
    del params, noise
    return jnp.flip(image, axis=0)


def _polarity_flip(image, params, noise):
    del params, noise
    return -image


def _rot180_polarity_flip(image, params, noise):
    del params, noise
    return -jnp.flip(image, axis=(0, 1))


def _add_noise(image, params, noise):
    return jnp.clip(image + (params["sigma"] * noise).astype(image.dtype), -1.0, 1.0)


def channel_constants(wavelengths: tuple[int, ...]) -> dict[str, jax.Array]:
    """The normalisation constants of each channel, from `solarjax.data.aia_prep.CHANNEL_SCALES`.

    Called when an EUV augmentation is first sampled (at trace time), so importing this module
    does not import the AIA packaging.

    Returns:
      'softening': [C] a_c in DN/s; 'stretch': [C] S_c = asinh(x_max_c / a_c); float32.

    Raises:
      ValueError: a wavelength without normalisation constants.
    """
    from solarjax.data.aia_prep import CHANNEL_SCALES

    unknown = [w for w in wavelengths if w not in CHANNEL_SCALES]
    if unknown:
        raise ValueError(f"no AIA normalisation constants for wavelengths {unknown}; known: {sorted(CHANNEL_SCALES)}")
    softening = [CHANNEL_SCALES[w][0] for w in wavelengths]
    stretch = [math.asinh(CHANNEL_SCALES[w][1] / CHANNEL_SCALES[w][0]) for w in wavelengths]
    return {"softening": jnp.asarray(softening, jnp.float32), "stretch": jnp.asarray(stretch, jnp.float32)}


def _checked_stretch(image: jax.Array, params: Params) -> jax.Array:
    """The params' per-channel stretch [C], refused when the image has another number of channels."""
    stretch = params["stretch"]
    if stretch.shape != image.shape[-1:]:
        raise ValueError(
            f"recipe for {stretch.shape[0]} channels (Recipe.wavelengths) applied to an image of shape {image.shape}"
        )
    return stretch


def apply_gain(image: jax.Array, gain: jax.Array, stretch: jax.Array) -> jax.Array:
    """Multiplies the physical intensity of an asinh-normalised image by a per-channel gain.

    Args:
      image: [H, W, C] normalised y = asinh(x / a_c) / S_c in [0, 1].
      gain: [C] factors g_c > 0 on x (DN/s).
      stretch: [C] S_c = asinh(x_max_c / a_c) (`channel_constants`).

    Returns:
      [H, W, C] asinh(g_c sinh(S_c y)) / S_c clipped to [0, 1]: exactly normalise(g_c x) for y < 1.
    """
    signal = jnp.sinh(stretch * image)  # x / a_c
    return jnp.clip(jnp.arcsinh(gain * signal) / stretch, 0.0, 1.0).astype(image.dtype)


def apply_photon_noise(
    image: jax.Array, noise_level: jax.Array, softening: jax.Array, stretch: jax.Array, noise: jax.Array
) -> jax.Array:
    """Poisson-like noise on an asinh-normalised image: variance noise_level * x on x DN/s.

    Args:
      image: [H, W, C] normalised y in [0, 1].
      noise_level: q >= 0 in DN/s, scalar (0: identity up to float rounding).
      softening: [C] a_c in DN/s.
      stretch: [C] S_c = asinh(x_max_c / a_c).
      noise: [H, W, C] standard normal.

    Returns:
      [H, W, C] asinh(u + sqrt(q u / a_c) n) / S_c clipped to [0, 1], u = sinh(S_c y) = x / a_c.
    """
    signal = jnp.sinh(stretch * image)
    noisy = signal + jnp.sqrt(noise_level * jnp.maximum(signal, 0.0) / softening) * noise
    return jnp.clip(jnp.arcsinh(noisy) / stretch, 0.0, 1.0).astype(image.dtype)


def _gain(image, params, noise):
    del noise
    return apply_gain(image, params["gain"], _checked_stretch(image, params))


def _photon_noise(image, params, noise):
    return apply_photon_noise(image, params["noise_level"], params["softening"], _checked_stretch(image, params), noise)


# ------------------------------------------------------------------------------------- parameters
def _no_params(key, recipe):
    del key, recipe
    return {}


def _sample_angle(key, recipe):
    limit = math.radians(recipe.rotation_degrees)
    return {
        "angle": jax.random.uniform(key, (), jnp.float32, -limit, limit),
        "fill_noise_std": jnp.float32(recipe.fill_noise_std),
    }


def _sample_shift(key, recipe):
    t = recipe.translation_pixels
    return {
        "shift": jax.random.randint(key, (2,), -t, t + 1).astype(jnp.float32),
        "fill_noise_std": jnp.float32(recipe.fill_noise_std),
    }


def _sample_zoom(key, recipe):
    low, high = recipe.zoom_range
    return {
        "zoom": jax.random.uniform(key, (), jnp.float32, low, high),
        "fill_noise_std": jnp.float32(recipe.fill_noise_std),
    }


def _sample_noise(key, recipe):
    low, high = recipe.noise_std_range
    return {"sigma": jax.random.uniform(key, (), jnp.float32, low, high)}


def _sample_gain(key, recipe):
    low, high = recipe.gain_range
    log_gain = jax.random.uniform(key, (len(recipe.wavelengths),), jnp.float32, math.log(low), math.log(high))
    return {"gain": jnp.exp(log_gain), "stretch": channel_constants(recipe.wavelengths)["stretch"]}


def _sample_photon_noise(key, recipe):
    low, high = recipe.photon_noise_range
    return {"noise_level": jax.random.uniform(key, (), jnp.float32, low, high), **channel_constants(recipe.wavelengths)}


# ----------------------------------------------------------------------------------- declarations
@dataclasses.dataclass(frozen=True)
class Augmentation:
    """One augmentation: its parameter sampler, its transform and its action on each quantity.

    Attributes:
      name: key in `AUGMENTATIONS`.
      sample: (key, recipe) -> params (dict of scalar or [2] arrays).
      apply: (image [H, W, C], params, noise [H, W, C] standard normal) -> image [H, W, C].
      actions: quantity name -> one of `ACTIONS`.
      exact: True when `apply` only moves, mirrors or negates pixels (declarations hold to rounding).
      uses_noise: True when `apply` reads its `noise` field.
      mirrors: True when the augmentation is a reflection, which reverses the handedness of the
        field (the sense of twist, i.e. of current helicity); rotations and B -> -B keep it.
      fills_voids: True when `apply` reads `noise` only to fill the pixels a geometric transform
        uncovers, scaled by `Recipe.fill_noise_std` (so not at all when that is 0).
    """

    name: str
    sample: Callable[[jax.Array, Recipe], Params]
    apply: Callable[[jax.Array, Params, jax.Array], jax.Array]
    actions: Mapping[str, str]
    exact: bool
    uses_noise: bool
    mirrors: bool = False
    fills_voids: bool = False


def _actions(default: str, **overrides: str) -> dict[str, str]:
    """An action for every quantity of `physics.QUANTITY_NAMES`: `default` unless overridden."""
    unknown = set(overrides) - set(QUANTITY_NAMES)
    if unknown:
        raise ValueError(f"actions for unknown quantities {sorted(unknown)}")
    return {name: overrides.get(name, default) for name in QUANTITY_NAMES}


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation(
            "rotation",
            _sample_angle,
            _rotate,
            _actions(INVARIANT, tilt=ROTATES, lead_polarity=ROTATES, tpf=CHANGES, tnf=CHANGES, r_value=CHANGES),
            exact=False,
            uses_noise=True,
            fills_voids=True,
        ),
        Augmentation(
            "translation", _sample_shift, _translate, _actions(INVARIANT), exact=True, uses_noise=True, fills_voids=True
        ),
        Augmentation(
            "zoom",
            _sample_zoom,
            _zoom,
            _actions(
                INVARIANT,
                tuf=SCALES_ZOOM2,
                net_flux=SCALES_ZOOM2,
                area=SCALES_ZOOM2,
                psep=SCALES_ZOOM,
                lead_polarity=SCALES_ZOOM,
                tpf=CHANGES,
                tnf=CHANGES,
                r_value=CHANGES,
            ),
            exact=False,
            uses_noise=True,
            fills_voids=True,
        ),
        Augmentation(
            "blur",
            _no_params,
            _box_blur_2x2,
            _actions(INVARIANT, tuf=CHANGES, tpf=CHANGES, tnf=CHANGES, area=CHANGES, r_value=CHANGES),
            exact=False,
            uses_noise=False,
        ),
        Augmentation(
            "hflip",
            _no_params,
            _hflip,
            _actions(INVARIANT, lead_polarity=SIGN_FLIP),
            exact=True,
            uses_noise=False,
            mirrors=True,
        ),
        Augmentation(
            "vflip", _no_params, _vflip, _actions(INVARIANT, tilt=SIGN_FLIP), exact=True, uses_noise=False, mirrors=True
        ),
        Augmentation(
            "polarity_flip",
            _no_params,
            _polarity_flip,
            _actions(
                INVARIANT,
                tpf=SWAP_TPF_TNF,
                tnf=SWAP_TPF_TNF,
                net_flux=SIGN_FLIP,
                tilt=SIGN_FLIP,
                lead_polarity=SIGN_FLIP,
            ),
            exact=True,
            uses_noise=False,
        ),
        Augmentation(
            "rot180_polarity_flip",
            _no_params,
            _rot180_polarity_flip,
            _actions(INVARIANT, tpf=SWAP_TPF_TNF, tnf=SWAP_TPF_TNF, net_flux=SIGN_FLIP),
            exact=True,
            uses_noise=False,
        ),
        Augmentation(
            "noise",
            _sample_noise,
            _add_noise,
            _actions(INVARIANT, tuf=CHANGES, tpf=CHANGES, tnf=CHANGES, r_value=CHANGES),
            exact=False,
            uses_noise=True,
        ),
        # EUV intensities: the Br physics quantities mean nothing there, so no claims.
        Augmentation("gain", _sample_gain, _gain, _actions(CHANGES), exact=False, uses_noise=False),
        Augmentation(
            "photon_noise", _sample_photon_noise, _photon_noise, _actions(CHANGES), exact=False, uses_noise=True
        ),
    )
}

EUV_PHOTOMETRIC = ("gain", "photon_noise")
"""Augmentations that act on AIA intensities through the normalisation (need `Recipe.wavelengths`)."""

AIA_SSL_WAVELENGTHS = (171, 193, 211)
"""The default channel triplet of SSL on AIA patches (Angstrom)."""


def _recipe(name: str, augmentations: tuple[str, ...], **ranges) -> Recipe:
    return Recipe(
        name=name,
        augmentations=augmentations,
        probabilities=(1.0,) * len(augmentations),
        min_ops=1,
        max_ops=len(augmentations),
        **ranges,
    )


RECIPES: dict[str, Recipe] = {
    # The paper's seven augmentations, one to seven in random order, with the flip of B as -B.
    "paper": _recipe("paper", ("rotation", "translation", "zoom", "blur", "hflip", "vflip", "polarity_flip")),
    # Retrieval by physics: what keeps TUF, PSEP, R and area (rotation, translation, both flips,
    # polarity flip as -B, HMI-level noise), nothing that rescales them (no zoom: TUF x zoom^2 and
    # PSEP x zoom; no blur: it lowers TUF, area and R).
    "search": _recipe("search", ("rotation", "translation", "hflip", "vflip", "polarity_flip", "noise")),
    # Nothing that changes tilt, the leading polarity or the sense of helicity: no mirror, no
    # small rotation, no plain polarity flip; rot180 + polarity flip is a proper rotation of -B.
    "physics_preserving": _recipe("physics_preserving", ("translation", "noise", "rot180_polarity_flip")),
    # An embedding blind to orientation and sign: any rotation, both mirrors, both flips.
    "orientation_free": _recipe(
        "orientation_free",
        ("rotation", "translation", "zoom", "blur", "hflip", "vflip", "polarity_flip", "noise"),
        rotation_degrees=180.0,
    ),
    # AIA EUV patches of the default triplet: the paper's geometry without polarity flip or blur,
    # per-channel gain jitter (calibration and degradation drift) and photon noise; voids stay dark.
    "euv": _recipe(
        "euv",
        ("rotation", "translation", "zoom", "hflip", "vflip", "gain", "photon_noise"),
        fill_noise_std=0.0,
        wavelengths=AIA_SSL_WAVELENGTHS,
    ),
}


def get_recipe(name_or_fields: str | Mapping[str, Any]) -> Recipe:
    """A named recipe from `RECIPES`, or a recipe from its `to_dict` fields."""
    if isinstance(name_or_fields, str):
        if name_or_fields not in RECIPES:
            raise ValueError(f"unknown augmentation recipe {name_or_fields!r}; known: {sorted(RECIPES)}")
        return RECIPES[name_or_fields]
    return Recipe.from_dict(name_or_fields)


def sample_params(name: str, key: jax.Array, recipe: Recipe) -> Params:
    """The random parameters of augmentation `name` under `recipe` (dict of scalar or [2] arrays)."""
    return _augmentation(name).sample(key, recipe)


def apply_augmentation(name: str, image: jax.Array, params: Params, noise: jax.Array | None = None) -> jax.Array:
    """Augmentation `name` with given parameters on one image [H, W, C].

    `noise` is the standard-normal field [H, W, C] the augmentation may use (void filling, additive
    noise); None means a zero field (no void noise, no additive noise).
    """
    return _augmentation(name).apply(image, params, jnp.zeros_like(image) if noise is None else noise)


def _augmentation(name: str) -> Augmentation:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; known: {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]


def predict_quantities(name: str, before: Mapping[str, jax.Array], params: Params) -> dict[str, jax.Array]:
    """What augmentation `name` with `params` does to the physics quantities, by its declarations.

    Args:
      name: augmentation name.
      before: quantity name -> value(s) of the original patch(es), as `physics.quantities` returns
        (tilt in radians, lead_polarity in pixels); scalars or [N].
      params: the augmentation's parameters (scalars, or [N] from a vmapped `sample_params`).

    Returns:
      quantity name -> predicted value(s), for every quantity whose action is not 'changes'.
    """
    predicted = {}
    for quantity, action in _augmentation(name).actions.items():
        if action == CHANGES:
            continue
        value = jnp.asarray(before[quantity])
        if action == INVARIANT:
            predicted[quantity] = value
        elif action == SIGN_FLIP:
            predicted[quantity] = -value
        elif action == SWAP_TPF_TNF:
            predicted[quantity] = jnp.asarray(before["tnf" if quantity == "tpf" else "tpf"])
        elif action == SCALES_ZOOM:
            predicted[quantity] = params["zoom"] * value
        elif action == SCALES_ZOOM2:
            predicted[quantity] = params["zoom"] ** 2 * value
        elif action == ROTATES:
            predicted[quantity] = _rotated_orientation(before, params["angle"])[quantity]
        else:  # pragma: no cover - ACTIONS is closed
            raise ValueError(f"unknown action {action!r}")
    return predicted


def _rotated_orientation(before: Mapping[str, jax.Array], angle: jax.Array) -> dict[str, jax.Array]:
    """Tilt and leading-polarity offset after turning the pos -> neg centroid vector by `angle`.

    From tilt = arcsin(d_row / sep) and lead_polarity = -d_col: d_row = |d_col| tan(tilt).
    """
    tilt, lead = jnp.asarray(before["tilt"]), jnp.asarray(before["lead_polarity"])
    d_col = -lead
    d_row = jnp.abs(d_col) * jnp.tan(tilt)
    separation = jnp.hypot(d_row, d_col)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    new_d_row = d_col * sin + d_row * cos
    new_d_col = d_col * cos - d_row * sin
    return {"tilt": jnp.arcsin(jnp.clip(new_d_row / separation, -1.0, 1.0)), "lead_polarity": -new_d_col}


# ------------------------------------------------------------------------------------------ views
def augment(key: jax.Array, image: jax.Array, recipe: Recipe) -> jax.Array:
    """One random view of one patch under `recipe` (jit- and vmap-able; recipe is static).

    Draws count ~ Uniform{min_ops..max_ops} and a random order of the recipe's augmentations, then
    runs `max_ops` slots (a `lax.scan`, so each branch compiles once): slot i applies the i-th
    augmentation of the order when i < count and its Bernoulli(probability) draw succeeds, and the
    identity otherwise (`lax.switch`).

    Noise fields: one standard-normal field per slot when several of the recipe's augmentations
    read one (`noise_readers`); a single field per view when only one does (it is applied at most
    once per view, so this is the same distribution, and a field of C channels costs C times more
    to draw in every slot); none when no augmentation reads one.

    Args:
      key: PRNG key.
      image: [H, W, C].
      recipe: a `Recipe` (hashable, closed over).

    Returns:
      [H, W, C].
    """
    augmentations = [AUGMENTATIONS[name] for name in recipe.augmentations]
    count_key, order_key, keep_key, slots_key = jax.random.split(key, 4)
    count = jax.random.randint(count_key, (), recipe.min_ops, recipe.max_ops + 1)
    order = jax.random.permutation(order_key, len(augmentations))
    kept = jax.random.uniform(keep_key, (len(augmentations),)) < jnp.asarray(recipe.probabilities, jnp.float32)
    branches = [functools.partial(_sample_and_apply, a, recipe) for a in augmentations] + [_identity]
    identity = len(augmentations)

    readers = noise_readers(recipe)
    if len(readers) == 1:
        view_noise = jax.random.normal(jax.random.fold_in(slots_key, recipe.max_ops), image.shape, image.dtype)
    else:
        view_noise = jnp.zeros_like(image)

    def run_slot(view, slot_and_key):
        slot, slot_key = slot_and_key
        params_key, noise_key = jax.random.split(slot_key)
        noise = jax.random.normal(noise_key, view.shape, view.dtype) if len(readers) > 1 else view_noise
        chosen = order[slot]
        active = (slot < count) & kept[chosen]
        return jax.lax.switch(jnp.where(active, chosen, identity), branches, params_key, view, noise), None

    slots = (jnp.arange(recipe.max_ops), jax.random.split(slots_key, recipe.max_ops))
    return jax.lax.scan(run_slot, image, slots)[0]


def noise_readers(recipe: Recipe) -> tuple[str, ...]:
    """The recipe's augmentations that read their noise field under it (void filling counts only
    when ``recipe.fill_noise_std > 0``)."""
    return tuple(
        name
        for name in recipe.augmentations
        if AUGMENTATIONS[name].uses_noise and not (AUGMENTATIONS[name].fills_voids and recipe.fill_noise_std == 0)
    )


def _sample_and_apply(
    augmentation: Augmentation, recipe: Recipe, key: jax.Array, image: jax.Array, noise: jax.Array
) -> jax.Array:
    return augmentation.apply(image, augmentation.sample(key, recipe), noise)


def _identity(key, image, noise):
    del key, noise
    return image


def augment_batch(key: jax.Array, images: jax.Array, recipe: Recipe) -> jax.Array:
    """Independent views of a batch: [B, H, W, C] -> [B, H, W, C], one key per image."""
    return jax.vmap(augment, in_axes=(0, 0, None))(jax.random.split(key, images.shape[0]), images, recipe)


def two_views(key: jax.Array, images: jax.Array, recipe: Recipe) -> tuple[jax.Array, jax.Array]:
    """The two independently augmented views SimSiam compares: each [B, H, W, C]."""
    key_1, key_2 = jax.random.split(key)
    return augment_batch(key_1, images, recipe), augment_batch(key_2, images, recipe)
