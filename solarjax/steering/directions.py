"""Latent directions of physical quantities: linear boundaries in the GAN's latent space.

The paper's recipe (Chatterjee, Munoz-Jaramillo & Malanushenko 2025, arXiv:2502.05351, latent-space
supervised learning): draw 10,000 latents
z ~ N(0, I) (seed 23), generate the patches, compute each physical quantity exactly, drop the
latents where it is undefined, label them high or low, and fit one linear SVM per quantity; the
unit normal of its decision boundary is the direction along which the quantity grows::

    generator = steering.as_generator(gan.load("runs/gan"))
    directions = steering.fit_directions(generator)             # all nine quantities
    directions.test_accuracy["tuf"], directions.r2["tuf"]
    n = directions.normal("tuf")                                # [D] unit vector
    directions.save("runs/gan/directions")
    directions = steering.load_directions("runs/gan/directions", generator)  # refuses another G

Conventions. ``normals[q] @ z + intercepts[q]`` is the signed Euclidean distance of z to quantity
q's boundary, positive on the high side. Labels are 1 (high) / 0 (low): with ``labels='median'``
high means above the median of the defined values; with ``labels=('percentile', p)`` the lowest
p% are low, the highest p% high, and the middle is left out (of training and test). Every method
is scored the same way: test accuracy is the fraction of test latents on the side of the boundary
that matches their label; R^2 is that of a ridge regression (alpha 1) of the quantity on z,
trained on the training latents and scored on the test latents where the quantity is defined.
Sign symmetry is the Pearson correlation of the quantity at z and at -z over the test latents: near
+1 the quantity is even in z and no linear boundary can order it (accuracy near 0.5, R^2 near 0);
this is what a generator that flips the field's sign with one latent direction does to the
unsigned quantities (TUF, area) when it learns a polarity-symmetric data set.

Methods: 'svm' (scikit-learn ``LinearSVC``, C = 1, ``dual='auto'``, as the paper), 'logistic'
(``LogisticRegression``, C = 1) and 'ridge' (ridge regression of the standardised quantity on z;
its boundary is where the prediction equals the label threshold, the median by default).

Generation runs in fixed-shape batches sharded over all devices (one mesh axis 'data', the
generator's parameters replicated); only the quantities come back to the host.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from solarjax import physics, sharding
from solarjax.fingerprint import file_sha256
from solarjax.jsonable import jsonable
from solarjax.models.gan import apply_generator, batch_bucket, sample_latents
from solarjax.steering.edit import conditional

FORMAT = "solarjax.steering.directions/1"
METHODS = ("svm", "logistic", "ridge")
DEFAULT_BATCH_SIZE = 256
"""Latents per generation batch (rounded up to a multiple of the device count)."""


# ------------------------------------------------------------------------------------ generator
@dataclasses.dataclass(frozen=True, eq=False)
class LatentGenerator:
    """A generator as steering sees it: a pure function of (parameters, latents).

    Attributes:
      apply_fn: ``(params, z [N, D] float32) -> images [N, 128, 128, 1]``, normalised field
        s = B / 1000 G in [-1, 1]; must be a pure, jit-able function (it is a static argument of
        the jitted programs, so keep one function object per generator to avoid recompiling).
      params: parameter pytree of the generator.
      fingerprint: identifies the trained generator; directions fitted with it store it.
      latent_dim: D, the size of z (100 for the paper's GAN).
    """

    apply_fn: Callable[[Any, jax.Array], jax.Array]
    params: Any
    fingerprint: str
    latent_dim: int = 100

    def __call__(self, z: jax.Array) -> jax.Array:
        """Images [N, 128, 128, 1] of latents [N, D] (one jitted call, no batching)."""
        return apply_generator(self.apply_fn, self.params, jnp.asarray(z, jnp.float32))


def as_generator(generator: Any) -> LatentGenerator:
    """A `LatentGenerator` from what the caller has.

    Accepts a `LatentGenerator`, a tuple ``(apply_fn, params, fingerprint[, latent_dim])``, or any
    object with ``apply_fn``, ``params`` and ``fingerprint`` attributes (and optionally
    ``latent_dim``), such as the object `solarjax.gan.load` returns.
    """
    if isinstance(generator, LatentGenerator):
        return generator
    if isinstance(generator, tuple) and len(generator) in (3, 4):
        return LatentGenerator(*generator)
    if all(hasattr(generator, name) for name in ("apply_fn", "params", "fingerprint")):
        return LatentGenerator(
            generator.apply_fn, generator.params, str(generator.fingerprint), int(getattr(generator, "latent_dim", 100))
        )
    raise TypeError(
        f"cannot use {type(generator).__name__} as a generator: pass a LatentGenerator, a tuple "
        "(apply_fn, params, fingerprint[, latent_dim]) or an object with apply_fn, params and "
        "fingerprint attributes"
    )


def _identity(images: jax.Array) -> jax.Array:
    return images


@functools.partial(jax.jit, static_argnums=0)
def _map_images(fn, images):
    return fn(images)


def device_multiple(count: int, mesh: jax.sharding.Mesh) -> int:
    """The smallest multiple of the mesh's 'data' axis size that is >= count (and >= 1)."""
    devices = mesh.shape[sharding.DATA_AXIS]
    return -(-max(count, 1) // devices) * devices


def map_generated(
    generator: Any,
    z: np.ndarray | jax.Array,
    fn: Callable[[jax.Array], Any] = _identity,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Any:
    """``fn(G(z))`` over many latents, in fixed-shape batches sharded over all devices.

    Args:
      generator: anything `as_generator` accepts.
      z: [N, D] latents, N >= 1.
      fn: jit-able function of images [B, 128, 128, 1] returning a pytree of [B, ...] arrays
        (default: the images themselves); a static argument, so pass a module-level function.
      batch_size: the most latents per XLA program. Fewer latents than that run in one batch of the
        next power of two (at least 8), rounded up to a multiple of the device count; the last batch
        is padded with zero latents (results for padding are dropped). Callers with different N thus
        share a few compiled shapes, and the generator's program of a shape (`apply_generator`) serves
        every ``fn``, which runs as a program of its own.

    Returns:
      The pytree of ``fn`` with numpy leaves [N, ...].
    """
    generator = as_generator(generator)
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != generator.latent_dim or len(z) == 0:
        raise ValueError(f"latents must be [N, {generator.latent_dim}] with N >= 1, got shape {z.shape}")
    mesh = sharding.make_data_mesh()
    batch_size = device_multiple(min(batch_size, batch_bucket(len(z))), mesh)
    batch_sharding = sharding.batch_sharded(mesh)
    params = jax.device_put(generator.params, sharding.replicated(mesh))
    pieces = []
    for start in range(0, len(z), batch_size):
        chunk = z[start : start + batch_size]
        padded = np.zeros((batch_size, z.shape[1]), np.float32)
        padded[: len(chunk)] = chunk
        images = apply_generator(generator.apply_fn, params, jax.device_put(padded, batch_sharding))
        out = images if fn is _identity else _map_images(fn, images)
        pieces.append(jax.tree.map(lambda leaf, count=len(chunk): np.asarray(leaf)[:count], out))
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *pieces)


def latent_quantities(
    generator: Any, z: np.ndarray | jax.Array, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, np.ndarray]:
    """Exact physical quantities of the patches G(z): dict name -> [N] (NaN where undefined)."""
    return map_generated(generator, z, physics.quantities, batch_size)


# ----------------------------------------------------------------------------------- directions
class DirectionsFileError(ValueError):
    """A saved directions folder is missing, partial, corrupted, or of an unknown format."""


class GeneratorMismatchError(ValueError):
    """Directions fitted with one generator were offered another."""


@dataclasses.dataclass(frozen=True)
class Directions:
    """Linear boundaries of physical quantities in a generator's latent space.

    Attributes:
      names: quantity names, in the order of the rows of ``normals``.
      normals: [Q, D] float64 unit normals, pointing to where the quantity is high.
      intercepts: [Q] offsets: ``normals @ z + intercepts`` is the signed distance to the boundary.
      test_accuracy: name -> fraction of test latents on the side matching their label.
      r2: name -> test R^2 of a ridge regression of the quantity on z.
      sign_symmetry: name -> Pearson correlation of the quantity at z and at -z (test latents):
        +1 even in z (no linear direction orders it), -1 odd.
      label_thresholds: name -> (low cut, high cut) in the quantity's units; equal for 'median'.
      counts: name -> {'defined', 'train', 'test'}: latents with the quantity defined, and those
        labelled in each split.
      mean, std: name -> mean and standard deviation of the defined values under the prior.
      settings: how the directions were fitted (method, labels, n, seed, test_fraction).
      fingerprint: fingerprint of the generator they belong to.
      split: the quantity whose boundary splits latent space for the piecewise family (None: no
        piecewise boundaries were fitted).
      piecewise_normals: [2, Q, D] unit normals fitted on the latents below (0) and above (1) the
        split boundary, on the same labels as ``normals``.
      piecewise_intercepts: [2, Q] their offsets.
      piecewise_radial: [2, Q] their coefficients of |z| - sqrt(D): the piecewise boundary of side s
        is ``piecewise_normals[s] . z + piecewise_radial[s] (|z| - sqrt(D)) + piecewise_intercepts[s]``.
      piecewise_accuracy: name -> test accuracy of the piecewise boundaries (each test latent
        scored by the boundary of its side).
      diagnosis: `solarjax.steering.diagnosis` figures: {'generator_odd_fraction', 'split',
        'quantities': name -> figures}.
    """

    names: tuple[str, ...]
    normals: np.ndarray
    intercepts: np.ndarray
    test_accuracy: dict[str, float]
    r2: dict[str, float]
    sign_symmetry: dict[str, float]
    label_thresholds: dict[str, tuple[float, float]]
    counts: dict[str, dict[str, int]]
    mean: dict[str, float]
    std: dict[str, float]
    settings: dict[str, Any]
    fingerprint: str
    split: str | None = None
    piecewise_normals: np.ndarray | None = None
    piecewise_intercepts: np.ndarray | None = None
    piecewise_radial: np.ndarray | None = None
    piecewise_accuracy: dict[str, float] = dataclasses.field(default_factory=dict)
    diagnosis: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return int(self.normals.shape[1])

    def _row(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no direction for {name!r}; these directions have {', '.join(self.names)}")
        return self.names.index(name)

    def normal(self, name: str) -> np.ndarray:
        """[D] unit normal of quantity ``name`` (the direction along which it grows)."""
        return self.normals[self._row(name)]

    def intercept(self, name: str) -> float:
        return float(self.intercepts[self._row(name)])

    def direction(self, name: str, hold: Sequence[str] = ()) -> np.ndarray:
        """[D] unit direction raising ``name`` while holding the quantities in ``hold``.

        The normal of ``name`` projected onto the orthogonal complement of the normals of
        ``hold`` (`solarjax.steering.edit.conditional`); the plain normal when ``hold`` is empty.
        """
        held = [self.normal(h) for h in hold if h != name]
        return np.asarray(conditional(jnp.asarray(self.normal(name)), *map(jnp.asarray, held)))

    @property
    def has_piecewise(self) -> bool:
        return self.split is not None and self.piecewise_normals is not None

    def side(self, z: np.ndarray) -> np.ndarray:
        """[N] 1 where latents [N, D] lie on the high side of the split boundary, else 0."""
        if not self.has_piecewise:
            raise ValueError("these directions have no piecewise boundaries (fit them with piecewise=True)")
        return (np.asarray(z, np.float64) @ self.normal(self.split) + self.intercept(self.split) >= 0).astype(int)

    def piecewise_direction(self, name: str, z: np.ndarray, hold: Sequence[str] = ()) -> np.ndarray:
        """[N, D] unit directions raising ``name`` (holding ``hold``) for latents z [N, D], each from the
        boundaries of the half-space of the split boundary the latent lies on."""
        sides = self.side(z)
        rows = [self._row(name)] + [self._row(h) for h in hold if h != name]
        per_side = []
        for side in (0, 1):
            normals = self.piecewise_normals[side][rows]
            per_side.append(np.asarray(conditional(jnp.asarray(normals[0]), *map(jnp.asarray, normals[1:]))))
        return np.stack(per_side)[sides]

    def decision(self, z: np.ndarray) -> np.ndarray:
        """[N, Q] signed distances of latents [N, D] to every boundary (positive: high side)."""
        return np.asarray(z, np.float64) @ self.normals.T + self.intercepts

    def summary(self) -> dict[str, dict[str, Any]]:
        """JSON-ready per-quantity figures: accuracy, R^2, sign symmetry, thresholds, counts, mean, std,
        intercept."""
        return {
            name: {
                "test_accuracy": self.test_accuracy[name],
                "r2": self.r2[name],
                "sign_symmetry": self.sign_symmetry[name],
                "intercept": self.intercept(name),
                "label_thresholds": list(self.label_thresholds[name]),
                "counts": self.counts[name],
                "mean": self.mean[name],
                "std": self.std[name],
                "piecewise_accuracy": self.piecewise_accuracy.get(name),
            }
            for name in self.names
        }

    def save(self, folder: str | os.PathLike) -> pathlib.Path:
        """Writes ``directions.npz`` (normals, intercepts) and then ``directions.json``.

        The JSON (format, generator fingerprint, settings, per-quantity figures, size and SHA-256
        of the npz) is written last, so an interrupted save leaves no loadable folder.
        """
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays_path = folder / "directions.npz"
        arrays = {"normals": self.normals, "intercepts": self.intercepts}
        if self.has_piecewise:
            arrays.update(
                piecewise_normals=self.piecewise_normals,
                piecewise_intercepts=self.piecewise_intercepts,
                piecewise_radial=self.piecewise_radial,
            )
        _atomic_write(arrays_path, lambda f: np.savez(f, **arrays))
        manifest = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "latent_dim": self.latent_dim,
            "names": list(self.names),
            "settings": self.settings,
            "quantities": self.summary(),
            "split": self.split,
            "diagnosis": self.diagnosis,
            "arrays": {"file": arrays_path.name, "bytes": arrays_path.stat().st_size, "sha256": _sha256(arrays_path)},
        }
        _atomic_write(folder / "directions.json", lambda f: f.write(json.dumps(jsonable(manifest), indent=2).encode()))
        return folder


def load_directions(folder: str | os.PathLike, generator: Any) -> Directions:
    """Directions saved by `Directions.save`, checked against the generator they will steer.

    Args:
      folder: the folder holding ``directions.json`` and ``directions.npz``.
      generator: the generator to be steered (anything with a ``fingerprint``), or its fingerprint.

    Raises:
      DirectionsFileError: a file is missing, partial, corrupted or of another format.
      GeneratorMismatchError: the directions were fitted with a generator of another fingerprint.
    """
    folder = pathlib.Path(folder)
    expected = generator if isinstance(generator, str) else str(generator.fingerprint)
    manifest_path = folder / "directions.json"
    if not manifest_path.is_file():
        raise DirectionsFileError(f"{manifest_path}: missing (not a directions folder, or its save was interrupted)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DirectionsFileError(f"{manifest_path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DirectionsFileError(
            f"{manifest_path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r}"
        )
    if manifest["fingerprint"] != expected:
        raise GeneratorMismatchError(
            f"directions in {folder} were fitted with the generator of fingerprint "
            f"{manifest['fingerprint']!r}, but the generator offered has fingerprint {expected!r}: "
            "latent directions of one generator mean nothing for another. Fit them again with "
            "`fit_directions` for this generator, or load the generator they belong to."
        )
    arrays_path = folder / manifest["arrays"]["file"]
    if not arrays_path.is_file():
        raise DirectionsFileError(f"{arrays_path}: missing")
    if (
        arrays_path.stat().st_size != manifest["arrays"]["bytes"]
        or _sha256(arrays_path) != manifest["arrays"]["sha256"]
    ):
        raise DirectionsFileError(
            f"{arrays_path}: size or SHA-256 differs from {manifest_path} (partial or corrupted file)"
        )
    with np.load(arrays_path) as arrays:
        normals, intercepts = arrays["normals"], arrays["intercepts"]
        piecewise_normals = arrays["piecewise_normals"] if "piecewise_normals" in arrays else None
        piecewise_intercepts = arrays["piecewise_intercepts"] if "piecewise_intercepts" in arrays else None
        piecewise_radial = arrays["piecewise_radial"] if "piecewise_radial" in arrays else None
    names = tuple(manifest["names"])
    figures = manifest["quantities"]
    if normals.shape != (len(names), manifest["latent_dim"]) or intercepts.shape != (len(names),):
        raise DirectionsFileError(
            f"{arrays_path}: arrays of shape {normals.shape} and {intercepts.shape} do not match {len(names)} quantities of dimension {manifest['latent_dim']}"
        )
    return Directions(
        names=names,
        normals=normals,
        intercepts=intercepts,
        test_accuracy={n: _float(figures[n]["test_accuracy"]) for n in names},
        r2={n: _float(figures[n]["r2"]) for n in names},
        sign_symmetry={n: _float(figures[n]["sign_symmetry"]) for n in names},
        label_thresholds={n: tuple(_float(v) for v in figures[n]["label_thresholds"]) for n in names},
        counts={n: dict(figures[n]["counts"]) for n in names},
        mean={n: _float(figures[n]["mean"]) for n in names},
        std={n: _float(figures[n]["std"]) for n in names},
        settings=manifest["settings"],
        fingerprint=manifest["fingerprint"],
        split=manifest.get("split") if piecewise_normals is not None else None,
        piecewise_normals=piecewise_normals,
        piecewise_intercepts=piecewise_intercepts,
        piecewise_radial=piecewise_radial,
        piecewise_accuracy={
            n: _float(figures[n].get("piecewise_accuracy"))
            for n in names
            if figures[n].get("piecewise_accuracy") is not None
        },
        diagnosis=manifest.get("diagnosis") or {},
    )


def fit_directions(
    generator: Any,
    quantities: Sequence[str] = physics.QUANTITY_NAMES,
    n: int = 10_000,
    seed: int = 23,
    labels: str | Sequence = "median",
    method: str = "svm",
    test_fraction: float = 0.2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    split: str | None = "lead_polarity",
    diagnose: bool = True,
    symmetry_latents: int = 1000,
    rotations: int = 2,
) -> Directions:
    """Fits one linear boundary per physical quantity in the generator's latent space.

    Args:
      generator: anything `as_generator` accepts.
      quantities: names among `solarjax.physics.QUANTITY_NAMES`.
      n: latents drawn from N(0, I) with ``jax.random.key(seed)``.
      seed: seeds the latents and the train/test split.
      labels: 'median' (high = above the median) or ('percentile', p) with 0 < p < 50 (lowest p%
        low, highest p% high, the rest left out).
      method: 'svm', 'logistic' or 'ridge' (see the module docstring).
      test_fraction: fraction of the latents held out for the test figures.
      batch_size: latents per generation batch.
      split: quantity whose boundary splits latent space into two half-spaces, each with its own
        boundary per quantity (the piecewise family; fitted with ``method`` on the same labels);
        None (or a quantity not among ``quantities``) fits no piecewise boundaries.
      diagnose: compute the `solarjax.steering.diagnosis` figures (needs ``split``).
      symmetry_latents: test latents whose negations and rotations are generated for the diagnosis.
      rotations: random rotations Q of the diagnosis.

    Returns:
      `Directions` for the requested quantities.

    Raises:
      ValueError: unknown quantity, method or labels, or a quantity defined for too few latents
        (fewer than 10 in a split or a single class).
    """
    generator = as_generator(generator)
    unknown = [q for q in quantities if q not in physics.QUANTITY_NAMES]
    if unknown:
        raise ValueError(f"unknown quantities {unknown}; known: {', '.join(physics.QUANTITY_NAMES)}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    low_pct, high_pct = _label_percentiles(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")

    z = sample_latents(n, generator.latent_dim, seed).astype(np.float64)
    split = split if split in quantities else None
    polarity = None
    if split is not None and diagnose and _polarity_statistics_fit(generator):
        values, polarity = map_generated(generator, z, _quantities_and_polarity_statistics, batch_size)
    else:
        values = latent_quantities(generator, z, batch_size)
    is_test = np.zeros(n, bool)
    is_test[np.random.default_rng(seed).permutation(n)[: round(test_fraction * n)]] = True

    fits = {
        name: _fit_quantity(name, z, values[name].astype(np.float64), is_test, low_pct, high_pct, method, seed)
        for name in quantities
    }
    mirrored = latent_quantities(generator, -z[is_test], batch_size)
    piecewise, diagnosis = {}, {}
    if split is not None:
        side = z @ fits[split]["normal"] + fits[split]["intercept"] >= 0
        piecewise = {q: _fit_piecewise(q, z, side, fits[q], method, seed) for q in quantities}
        if diagnose:
            diagnosis = _diagnose(
                generator,
                z,
                values,
                mirrored,
                is_test,
                side,
                fits,
                split,
                seed,
                symmetry_latents,
                rotations,
                batch_size,
                method,
                polarity,
            )
    return Directions(
        names=tuple(quantities),
        normals=np.stack([fits[q]["normal"] for q in quantities]),
        intercepts=np.array([fits[q]["intercept"] for q in quantities]),
        test_accuracy={q: fits[q]["test_accuracy"] for q in quantities},
        r2={q: fits[q]["r2"] for q in quantities},
        sign_symmetry={q: _pearson(values[q][is_test], mirrored[q]) for q in quantities},
        label_thresholds={q: fits[q]["thresholds"] for q in quantities},
        counts={q: fits[q]["counts"] for q in quantities},
        mean={q: fits[q]["mean"] for q in quantities},
        std={q: fits[q]["std"] for q in quantities},
        settings={
            "method": method,
            "labels": labels if isinstance(labels, str) else list(labels),
            "n": n,
            "seed": seed,
            "test_fraction": test_fraction,
        },
        fingerprint=generator.fingerprint,
        split=split,
        piecewise_normals=np.stack([[piecewise[q]["normals"][s] for q in quantities] for s in (0, 1)])
        if split
        else None,
        piecewise_intercepts=np.array([[piecewise[q]["intercepts"][s] for q in quantities] for s in (0, 1)])
        if split
        else None,
        piecewise_radial=np.array([[piecewise[q]["radial"][s] for q in quantities] for s in (0, 1)]) if split else None,
        piecewise_accuracy={q: piecewise[q]["test_accuracy"] for q in piecewise},
        diagnosis=diagnosis,
    )


def _fit_piecewise(
    name: str, z: np.ndarray, side: np.ndarray, fit: Mapping[str, Any], method: str, seed: int
) -> dict[str, Any]:
    """One boundary per half-space (side False = 0, True = 1) on the labels of the global fit ``fit``.

    Each boundary is linear in [z, |z| - sqrt(D)]: ``n . z + a (|z| - sqrt(D)) + b`` with n a unit
    vector, so a quantity that also grows with |z| gets its direction at fixed |z| (the shell the
    edit moves on) in n. A half-space with too few labelled latents or one class keeps the global
    boundary (a = 0).
    """
    high, train, test = fit["high"], fit["train"], fit["test"]
    radius = np.linalg.norm(z, axis=1) - np.sqrt(z.shape[1])
    features = np.hstack([z, radius[:, None]])
    normals, radial, intercepts, correct = [], [], [], np.zeros(len(z), bool)
    for value in (False, True):
        here = side == value
        normal, slope, intercept = fit["normal"], 0.0, fit["intercept"]
        if (train & here).sum() >= 10 and len(np.unique(high[train & here])) == 2:
            weights, bias = _boundary(features[train & here], high[train & here], method, seed)
            norm = float(np.linalg.norm(weights[:-1]))
            if norm > 0:
                normal, slope, intercept = weights[:-1] / norm, float(weights[-1]) / norm, bias / norm
        normals.append(normal)
        radial.append(slope)
        intercepts.append(intercept)
        correct[here] = (z[here] @ normal + slope * radius[here] + intercept > 0) == high[here]
    return {
        "normals": normals,
        "radial": radial,
        "intercepts": intercepts,
        "test_accuracy": float(np.mean(correct[test])) if test.any() else float("nan"),
    }


def _boundary(z: np.ndarray, high: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, float]:
    """(unit normal [D], intercept) of a linear classifier of labels ``high`` (ridge: on the 0/1 labels)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import LinearSVC

    if method == "svm":
        model = LinearSVC(C=1.0, dual="auto", max_iter=10_000, random_state=seed).fit(z, high)
        weights, bias = model.coef_[0], float(model.intercept_[0])
    elif method == "logistic":
        model = LogisticRegression(C=1.0, max_iter=1_000).fit(z, high)
        weights, bias = model.coef_[0], float(model.intercept_[0])
    else:
        model = Ridge(alpha=1.0).fit(z, high.astype(np.float64))
        weights, bias = model.coef_, float(model.intercept_) - 0.5
    norm = float(np.linalg.norm(weights))
    return (weights / norm, bias / norm) if norm > 0 else (weights, bias)


def _quantities_and_polarity_statistics(images: jax.Array) -> tuple[dict[str, jax.Array], jax.Array]:
    """(exact quantities name -> [B], `solarjax.steering.diagnosis.polarity_statistics` [B, P]) of images."""
    from solarjax.steering import diagnosis

    return physics.quantities(images), diagnosis.polarity_statistics(images, xp=jnp)


def _polarity_statistics_fit(generator: LatentGenerator) -> bool:
    """Whether the generator's patches split into the blocks of the polarity statistics."""
    from solarjax.steering import diagnosis

    shape = jax.eval_shape(
        generator.apply_fn, generator.params, jax.ShapeDtypeStruct((1, generator.latent_dim), jnp.float32)
    ).shape
    return len(shape) in (3, 4) and diagnosis.polarity_statistics_fit(shape[1], shape[2])


def _diagnose(
    generator,
    z,
    values,
    mirrored,
    is_test,
    side,
    fits,
    split,
    seed,
    symmetry_latents,
    rotations,
    batch_size,
    method,
    polarity=None,
) -> dict[str, Any]:
    """`solarjax.steering.diagnosis` figures of every fitted quantity (see that module); ``polarity`` [N, P]
    the polarity statistics of G(z) (None: that feature set is left out)."""
    from solarjax.steering import diagnosis

    test_index = np.flatnonzero(is_test)[:symmetry_latents]
    symmetric = z[test_index]
    rng = np.random.default_rng(seed)
    rotated = [
        latent_quantities(generator, symmetric @ diagnosis.random_rotation(z.shape[1], rng).T, batch_size)
        for _ in range(rotations)
    ]
    odd_latents = symmetric[:256]
    patches = map_generated(generator, np.concatenate([odd_latents, -odd_latents]), batch_size=batch_size)
    patches = patches.reshape(2, len(odd_latents), -1)
    signs = np.where(side, 1.0, -1.0)
    position = {index: i for i, index in enumerate(np.flatnonzero(is_test))}
    mirrored_rows = np.array([position[i] for i in test_index])
    layer = diagnosis.first_dense_layer(generator.params)
    hidden = None if layer is None else diagnosis.hidden_features(*layer, z, ~is_test)
    report = {}
    for name, fit in fits.items():
        report[name] = diagnosis.diagnose_quantity(
            z,
            signs,
            fit["high"],
            fit["train"],
            fit["test"],
            values[name][test_index],
            mirrored[name][mirrored_rows],
            [r[name] for r in rotated],
            seed,
            known={"z": fit["test_accuracy"]} if method == "svm" else None,
            hidden=hidden,
            polarity=polarity,
        )
    return {
        "generator_odd_fraction": diagnosis.odd_fraction(patches[0], patches[1]),
        "split": split,
        "symmetry_latents": len(test_index),
        "rotations": rotations,
        "polarity_statistics_features": None if polarity is None else int(polarity.shape[1]),
        "quantities": report,
    }


def _label_percentiles(labels: str | Sequence) -> tuple[float, float]:
    """(low, high) percentiles of the label cuts: (50, 50) for 'median', (p, 100 - p) otherwise."""
    if isinstance(labels, str):
        if labels != "median":
            raise ValueError(f"labels must be 'median' or ('percentile', p), got {labels!r}")
        return 50.0, 50.0
    if len(labels) == 2 and labels[0] == "percentile" and 0.0 < float(labels[1]) < 50.0:
        return float(labels[1]), 100.0 - float(labels[1])
    raise ValueError(f"labels must be 'median' or ('percentile', p) with 0 < p < 50, got {labels!r}")


def _fit_quantity(
    name: str,
    z: np.ndarray,
    values: np.ndarray,
    is_test: np.ndarray,
    low_pct: float,
    high_pct: float,
    method: str,
    seed: int,
) -> dict[str, Any]:
    """Boundary, figures and counts of one quantity (see `fit_directions`)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import LinearSVC

    defined = np.isfinite(values)
    low_cut, high_cut = np.percentile(values[defined], [low_pct, high_pct]) if defined.any() else (np.nan, np.nan)
    high = values > high_cut if low_pct == high_pct else values >= high_cut
    labelled = defined & ((values <= low_cut) | high)
    train, test = labelled & ~is_test, labelled & is_test
    for split, mask in (("training", train), ("test", test)):
        if mask.sum() < 10 or len(np.unique(high[mask])) < 2:
            raise ValueError(
                f"quantity {name!r}: only {int(mask.sum())} labelled {split} latents with "
                f"{len(np.unique(high[mask]))} class(es) ({int(defined.sum())} of {len(values)} defined): "
                "draw more latents or check the generator"
            )
    mean, std = float(values[defined].mean()), float(values[defined].std())
    if method == "svm":
        model = LinearSVC(C=1.0, dual="auto", max_iter=10_000, random_state=seed).fit(z[train], high[train])
        weights, bias = model.coef_[0], float(model.intercept_[0])
    elif method == "logistic":
        model = LogisticRegression(C=1.0, max_iter=1_000).fit(z[train], high[train])
        weights, bias = model.coef_[0], float(model.intercept_[0])
    else:
        scale = std if std > 0 else 1.0
        model = Ridge(alpha=1.0).fit(z[train], (values[train] - mean) / scale)
        threshold = (0.5 * (low_cut + high_cut) - mean) / scale
        weights, bias = model.coef_, float(model.intercept_) - threshold
    norm = float(np.linalg.norm(weights))
    if not norm > 0:
        raise ValueError(f"quantity {name!r}: the {method} boundary has a zero normal (labels do not depend on z)")
    normal, intercept = weights / norm, bias / norm
    accuracy = float(np.mean((z[test] @ normal + intercept > 0) == high[test]))
    regression = Ridge(alpha=1.0).fit(z[defined & ~is_test], values[defined & ~is_test])
    r2 = float(regression.score(z[defined & is_test], values[defined & is_test]))
    return {
        "normal": normal,
        "intercept": intercept,
        "test_accuracy": accuracy,
        "r2": r2,
        "thresholds": (float(low_cut), float(high_cut)),
        "counts": {"defined": int(defined.sum()), "train": int(train.sum()), "test": int(test.sum())},
        "mean": mean,
        "std": std,
        "high": high,
        "train": train,
        "test": test,
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the entries where both are finite (NaN if fewer than 3 or constant)."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
        return float("nan")
    return float(np.corrcoef(a[both], b[both])[0, 1])


# ------------------------------------------------------------------------------------- file I/O
def _atomic_write(path: pathlib.Path, write: Callable[[Any], Any]) -> None:
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "wb") as f:
        write(f)
    os.replace(temporary, path)


def _sha256(path: pathlib.Path) -> str:
    return file_sha256(path)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)
