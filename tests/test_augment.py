"""Augmentations: conventions, exactness, randomness of views, and every declared physics action.

Declarations are checked with `solarjax.physics.quantities` on realistic patches: synthetic active
regions (their field kept 20 px inside the frame, so no shift, zoom <= 1.2 or rotation moves flux
out) and real SHARP Br frames. Exact augmentations must match their declarations to float rounding;
resampling ones (rotation, zoom, blur) and noise within the error bilinear interpolation and
thresholding at 150 G cause on pixel-scale structure: median <= 3 % and 90th percentile <= 12 % of
the quantity's natural scale, tilt within 0.03 rad median and 0.12 rad (7 deg) at the 90th
percentile, each declaration also beating the "unchanged" hypothesis where it predicts a change.
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax import augment, physics
from solarjax.data import preprocess_patch, read_sharp
from solarjax.data.synthetic import generate

SIZE = 128
MARGIN = 20
QUANTITIES = physics.QUANTITY_NAMES


@pytest.fixture(scope="module")
def contained_patches() -> jax.Array:
    """64 synthetic patches [64, 128, 128, 1] whose field is zero within 20 px of the border: a circular
    window tapered smoothly (cos^2 over 8 px), so that no rotation cuts or smears a sharp edge (the synthetic
    regions fill their SHARP-like boxes up to the border)."""
    images = generate(64, seed=3).images
    centre = (SIZE - 1) / 2
    radius = np.hypot(*np.meshgrid(np.arange(SIZE) - centre, np.arange(SIZE) - centre, indexing="ij"))
    outer = SIZE / 2 - MARGIN
    window = np.clip((outer - radius) / 8.0, 0.0, 1.0)
    window = np.sin(0.5 * np.pi * window) ** 2
    return jnp.asarray(images * window.astype(np.float32))[..., None]


@pytest.fixture(scope="module")
def real_patches(real_br_files) -> jax.Array:
    """12 real SHARP Br frames, preprocessed: [12, 128, 128, 1], field up to the border."""
    images = [preprocess_patch(read_sharp(path)).image for path in real_br_files[::3]]
    return jnp.asarray(np.stack(images))[..., None]


def _quantities(images) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in physics.quantities(images).items()}


_apply = jax.jit(augment.apply_augmentation, static_argnums=0)
_augment_batch = jax.jit(augment.augment_batch, static_argnums=2)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _apply_all(name, images, recipe, seed=7):
    """One random draw of augmentation `name` per image: (augmented [N,...], params with [N] leaves)."""
    keys = jax.random.split(jax.random.key(seed), images.shape[0])
    params = jax.vmap(lambda k: augment.sample_params(name, k, recipe))(keys)
    noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), images.shape[1:]))(keys)
    out = jax.vmap(lambda x, p, n: augment.apply_augmentation(name, x, p, n))(images, params, noise)
    return out, params


def _errors(quantity, measured, predicted, before) -> np.ndarray:
    """|measured - predicted| on the quantity's natural scale (finite entries only)."""
    separation_px = before["psep"] * np.hypot(SIZE, SIZE)
    if quantity == "tilt":
        error = np.abs(np.arcsin(np.sin(measured - predicted)))  # radians, fold-aware
    elif quantity == "lead_polarity":
        error = np.abs(measured - predicted) / separation_px
    elif quantity == "net_flux":
        error = np.abs(measured - predicted) / (before["tuf"] * SIZE * SIZE)  # of the unsigned flux
    else:
        error = np.abs(measured - predicted) / np.abs(predicted)
    return error[np.isfinite(error)]


# ------------------------------------------------------------------------------------------ recipes
def test_recipes_round_trip_through_json():
    for recipe in augment.RECIPES.values():
        text = json.dumps(recipe.to_dict())
        assert augment.get_recipe(json.loads(text)) == recipe
        assert augment.get_recipe(recipe.name) is recipe
    paper = augment.RECIPES["paper"]
    assert paper.augmentations == ("rotation", "translation", "zoom", "blur", "hflip", "vflip", "polarity_flip")
    assert (paper.min_ops, paper.max_ops, paper.rotation_degrees, paper.translation_pixels) == (1, 7, 20.0, 10)
    assert paper.zoom_range == (0.8, 1.2)


def test_bad_recipes_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown augmentations \\['shear'\\]"):
        augment.Recipe("x", ("rotation", "shear"), (1.0, 1.0))
    with pytest.raises(ValueError, match="1 probabilities for 2 augmentations"):
        augment.Recipe("x", ("rotation", "zoom"), (1.0,))
    with pytest.raises(ValueError, match="max_ops"):
        augment.Recipe("x", ("rotation",), (1.0,), max_ops=2)
    with pytest.raises(ValueError, match="unknown augmentation recipe 'fancy'"):
        augment.get_recipe("fancy")
    with pytest.raises(ValueError, match="not Recipe fields"):
        augment.Recipe.from_dict({**augment.RECIPES["paper"].to_dict(), "colour": 1})


def test_every_augmentation_declares_every_quantity_with_a_known_action():
    for a in augment.AUGMENTATIONS.values():
        assert tuple(a.actions) == QUANTITIES, a.name
        assert set(a.actions.values()) <= set(augment.ACTIONS), a.name


def test_physics_preserving_recipe_keeps_tilt_leading_polarity_and_handedness():
    for name in augment.RECIPES["physics_preserving"].augmentations:
        a = augment.AUGMENTATIONS[name]
        assert a.actions["tilt"] == augment.INVARIANT, name
        assert a.actions["lead_polarity"] in (augment.INVARIANT, augment.SCALES_ZOOM), name
        assert not a.mirrors, name
    assert {"hflip", "vflip", "polarity_flip"} <= set(augment.RECIPES["orientation_free"].augmentations)
    assert augment.RECIPES["orientation_free"].rotation_degrees == 180.0


def test_search_recipe_keeps_the_searched_quantities(contained_patches):
    recipe = augment.RECIPES["search"]
    assert {"zoom", "blur"}.isdisjoint(recipe.augmentations)
    assert {"rotation", "translation", "hflip", "vflip", "polarity_flip", "noise"} == set(recipe.augmentations)
    assert {"zoom", "blur"}.isdisjoint(augment.RECIPES["physics_preserving"].augmentations)
    for name in recipe.augmentations:  # declared: TUF, PSEP, area never rescaled
        actions = augment.AUGMENTATIONS[name].actions
        assert actions["psep"] == actions["area"] == augment.INVARIANT, name
        assert actions["tuf"] in (augment.INVARIANT, augment.CHANGES), name
    # Measured: whole random views (one to six augmentations) keep TUF, PSEP and area of contained patches.
    views = augment.augment_batch(jax.random.key(5), contained_patches, recipe)
    before = physics.quantities(contained_patches)
    after = physics.quantities(views)
    paper = physics.quantities(augment.augment_batch(jax.random.key(5), contained_patches, augment.RECIPES["paper"]))
    for name in ("psep", "area"):  # interpolation error only, well below what zoom and blur do
        relative = np.abs(np.asarray(after[name]) / np.asarray(before[name]) - 1)
        paper_relative = np.abs(np.asarray(paper[name]) / np.asarray(before[name]) - 1)
        assert np.nanmedian(relative) < 0.03 and np.nanpercentile(relative, 90) < 0.2, name
        assert np.nanmean(relative) < 0.6 * np.nanmean(paper_relative), name
    # TUF = mean |s| gains at most the noise floor E|n| = sqrt(2 / pi) * rms <= 0.8 * 0.02 (+ void noise).
    raised = np.asarray(after["tuf"]) - np.asarray(before["tuf"])
    assert np.nanpercentile(np.abs(raised), 90) < 0.8 * recipe.noise_std_range[1] + 0.004


def _marker_image():
    """An asymmetric test image [128, 128, 1]: distinct blocks of +1 and -0.5."""
    return jnp.zeros((SIZE, SIZE, 1)).at[20:30, 60:75].set(1.0).at[40:52, 80:90].set(-0.5)


def test_geometric_identities_are_exact():
    image = _marker_image()
    noise = jax.random.normal(jax.random.key(0), image.shape)
    for name, params in (("rotation", {"angle": 0.0}), ("zoom", {"zoom": 1.0}), ("translation", {"shift": [0.0, 0.0]})):
        params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()} | {"fill_noise_std": jnp.float32(0.01)}
        np.testing.assert_array_equal(_apply(name, image, params, noise), image)


def test_rotation_by_90_degrees_turns_counterclockwise_with_row_zero_at_the_bottom():
    image = _marker_image()
    params = {"angle": jnp.float32(np.pi / 2), "fill_noise_std": jnp.float32(0.0)}
    rotated = _apply("rotation", image, params)
    # np.rot90 turns counterclockwise with row 0 at the top, i.e. clockwise with row 0 at the bottom.
    np.testing.assert_allclose(rotated, np.rot90(image, k=-1, axes=(0, 1)), atol=1e-5)
    before, after = _quantities(image[None]), _quantities(rotated[None])
    expected = np.arcsin(np.sin(before["tilt"] + np.pi / 2))
    np.testing.assert_allclose(after["tilt"], expected, atol=1e-4)


def test_integer_translation_moves_pixels_exactly_and_fills_with_noise():
    image = _marker_image() + 0.3  # a field that reaches the border
    params = {"shift": jnp.array([3.0, -5.0]), "fill_noise_std": jnp.float32(0.01)}
    noise = jax.random.normal(jax.random.key(1), image.shape)
    moved = _apply("translation", image, params, noise)
    np.testing.assert_array_equal(moved[3:, :-5], image[:-3, 5:])
    np.testing.assert_allclose(moved[:3], 0.01 * noise[:3], rtol=1e-6)  # uncovered rows: noise, not edge
    np.testing.assert_allclose(moved[:, -5:], 0.01 * noise[:, -5:], rtol=1e-6)


def test_rotation_voids_are_quiet_sun_noise_not_edge_smear():
    image = jnp.ones((SIZE, SIZE, 1))
    params = {"angle": jnp.float32(np.pi / 4), "fill_noise_std": jnp.float32(0.01)}
    noise = jax.random.normal(jax.random.key(2), image.shape)
    rotated = np.asarray(_apply("rotation", image, params, noise))[..., 0]
    corner = rotated[:12, :12]  # wholly outside the turned square (>= 73 px from the centre)
    assert abs(corner.mean()) < 0.003 and 0.008 < corner.std() < 0.012
    np.testing.assert_allclose(rotated[44:84, 44:84], 1.0, atol=1e-5)  # the centre is untouched


def test_zoom_scales_lengths_about_the_centre():
    image = jnp.zeros((SIZE, SIZE, 1)).at[63:65, 83:85].set(1.0)  # a 2 x 2 spot 20 px right of centre
    zoomed = _apply("zoom", image, {"zoom": jnp.float32(1.5), "fill_noise_std": jnp.float32(0)})
    cols = np.arange(SIZE)
    centroid_col = np.sum(np.asarray(zoomed)[..., 0].sum(0) * cols) / np.asarray(zoomed).sum()
    np.testing.assert_allclose(centroid_col - 63.5, 1.5 * 20.0, atol=1e-3)


def test_noise_has_the_drawn_rms_and_stays_in_range():
    image = jnp.zeros((SIZE, SIZE, 1)).at[:, :64].set(1.0)
    noise = jax.random.normal(jax.random.key(3), image.shape)
    noisy = np.asarray(_apply("noise", image, {"sigma": jnp.float32(0.02)}, noise))
    assert noisy.max() <= 1.0 and noisy.min() >= -1.0
    np.testing.assert_allclose(noisy[:, 64:].std(), 0.02, rtol=0.05)


def test_box_blur_averages_two_by_two_blocks():
    image = jax.random.normal(jax.random.key(4), (SIZE, SIZE, 1))
    blurred = _apply("blur", image, {})
    np.testing.assert_allclose(blurred[10, 20], image[10:12, 20:22].mean((0, 1)), rtol=1e-6)
    np.testing.assert_allclose(blurred[-1, -1], image[-1, -1], rtol=1e-6)  # edge repeated, not zero


# -------------------------------------------------------------------------------- the declarations
EXACT = [name for name, a in augment.AUGMENTATIONS.items() if a.exact and name != "translation"]
RESAMPLING = ["rotation", "zoom", "blur", "noise"]


@pytest.mark.parametrize("name", EXACT)
def test_exact_augmentations_match_their_declarations_on_real_sharp_patches(name, real_patches):
    recipe = augment.RECIPES["orientation_free"]
    out, params = _apply_all(name, real_patches, recipe)
    before, after = _quantities(real_patches), _quantities(out)
    predicted = augment.predict_quantities(name, before, params)
    assert set(predicted) == set(QUANTITIES)  # exact ones claim everything
    for q in QUANTITIES:
        np.testing.assert_allclose(after[q], np.asarray(predicted[q]), rtol=2e-5, atol=1e-6, err_msg=f"{name} {q}")


def test_translation_matches_its_declarations_exactly_when_the_field_stays_in_the_frame(contained_patches):
    recipe = augment.Recipe("t", ("translation",), (1.0,), fill_noise_std=0.0)
    out, params = _apply_all("translation", contained_patches, recipe)
    assert np.abs(np.asarray(params["shift"])).max() == recipe.translation_pixels  # the range is used
    before, after = _quantities(contained_patches), _quantities(out)
    predicted = augment.predict_quantities("translation", before, params)
    for q in QUANTITIES:
        np.testing.assert_allclose(after[q], np.asarray(predicted[q]), rtol=2e-5, atol=1e-6, err_msg=q)


@pytest.mark.parametrize("name", RESAMPLING)
def test_resampling_augmentations_match_their_declarations_within_interpolation_error(name, contained_patches):
    recipe = augment.Recipe("r", (name,), (1.0,), rotation_degrees=180.0, fill_noise_std=0.0)
    out, params = _apply_all(name, contained_patches, recipe)
    before, after = _quantities(contained_patches), _quantities(out)
    predicted = augment.predict_quantities(name, before, params)
    declared = {q for q, action in augment.AUGMENTATIONS[name].actions.items() if action != augment.CHANGES}
    assert set(predicted) == declared
    for q in declared:
        errors = _errors(q, after[q], np.asarray(predicted[q]), before)
        # area counts pixels above 150 G: plage near that level (the synthetic regions carry much of it)
        # is counted differently after bilinear resampling (zoom: median 0.025, p90 0.148 measured).
        median_limit, p90_limit = (0.03, 0.2 if q == "area" else 0.12)
        assert errors.size >= 48, (name, q)
        assert np.median(errors) <= median_limit and np.percentile(errors, 90) <= p90_limit, (
            f"{name} {q}: median {np.median(errors):.3g}, p90 {np.percentile(errors, 90):.3g}"
        )
        if augment.AUGMENTATIONS[name].actions[q] != augment.INVARIANT:
            unchanged = _errors(q, after[q], before[q], before)
            # the declaration beats "unchanged" several times over (zoom net_flux: 0.0066 against 0.022 on
            # the near-balanced synthetic regions, whose net flux is a small difference of large fluxes)
            assert np.median(errors) < 0.4 * np.median(unchanged), (name, q)


# ------------------------------------------------------------------------------------------- views
def _outcome_table(image):
    """The seven non-empty combinations of hflip, vflip, polarity flip of `image`, keyed by the set."""
    ops = {"hflip": lambda x: jnp.flip(x, 1), "vflip": lambda x: jnp.flip(x, 0), "polarity_flip": lambda x: -x}
    table = {}
    for mask in range(1, 8):
        chosen = frozenset(name for bit, name in enumerate(ops) if mask >> bit & 1)
        result = image
        for name in chosen:
            result = ops[name](result)
        table[chosen] = np.asarray(result)
    return table


def _identify(view, table):
    matches = [k for k, v in table.items() if np.array_equal(view, v)]
    assert len(matches) == 1
    return matches[0]


def test_views_apply_one_to_k_augmentations_uniformly():
    image = _marker_image()
    recipe = augment.Recipe("flips", ("hflip", "vflip", "polarity_flip"), (1.0, 1.0, 1.0), min_ops=1, max_ops=3)
    views = np.asarray(_augment_batch(jax.random.key(5), jnp.broadcast_to(image, (600,) + image.shape), recipe))
    table = _outcome_table(image)
    subsets = [_identify(v, table) for v in views]
    sizes = np.bincount([len(s) for s in subsets], minlength=4)[1:]
    np.testing.assert_allclose(sizes / 600, 1 / 3, atol=0.06)  # count uniform over 1..3
    singles = [s for s in subsets if len(s) == 1]
    assert len(set(singles)) == 3 and min(singles.count(s) for s in set(singles)) > 40


def test_probabilities_gate_augmentations():
    image = _marker_image()
    recipe = augment.Recipe("p", ("hflip", "vflip", "polarity_flip"), (0.0, 1.0, 1.0), min_ops=3, max_ops=3)
    views = np.asarray(_augment_batch(jax.random.key(6), jnp.broadcast_to(image, (50,) + image.shape), recipe))
    assert all(np.array_equal(v, -np.flip(image, 0)) for v in views)


def test_order_of_augmentations_is_random():
    image = jax.random.normal(jax.random.key(7), (SIZE, SIZE, 1))
    recipe = augment.Recipe("o", ("blur", "hflip"), (1.0, 1.0), min_ops=2, max_ops=2)
    views = np.asarray(_augment_batch(jax.random.key(8), jnp.broadcast_to(image, (200,) + image.shape), recipe))
    blur_first = np.asarray(_apply("hflip", _apply("blur", image, {}), {}))
    flip_first = np.asarray(_apply("blur", _apply("hflip", image, {}), {}))
    is_blur_first = np.array([np.allclose(v, blur_first, atol=1e-6) for v in views])
    is_flip_first = np.array([np.allclose(v, flip_first, atol=1e-6) for v in views])
    assert np.all(is_blur_first ^ is_flip_first)
    assert 0.35 < is_blur_first.mean() < 0.65


def test_views_are_jitted_deterministic_per_key_and_differ_between_keys(contained_patches):
    recipe = augment.RECIPES["paper"]
    views = jax.jit(augment.two_views, static_argnums=2)
    images = contained_patches[:8]
    a1, a2 = views(jax.random.key(9), images, recipe)
    b1, _ = views(jax.random.key(9), images, recipe)
    c1, _ = views(jax.random.key(10), images, recipe)
    assert a1.shape == images.shape and a1.dtype == jnp.float32
    np.testing.assert_array_equal(a1, b1)
    assert not np.allclose(a1, a2) and not np.allclose(a1, c1)
    assert np.all(np.isfinite(a1)) and float(jnp.abs(a1).max()) <= 1.0 + 1e-6
