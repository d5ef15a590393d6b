"""GAN training: one-step smoke test with the paper's losses, sharded == single-device, resume ==
uninterrupted, refusal of another model's checkpoints, NaN guard, checkpoint retention, quality
figures, and the `solarjax.gan` loading / sample files."""

import json
import math
import pathlib

import flax
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from astropy.io import fits

from solarjax import gan
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import gan as gan_train
from solarjax.train import loop, monitor, quality, sharding
from tests.helpers import BATCH, ArrayIterator, bipole_patches, tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]
PATCHES = bipole_patches(24, seed=0)


def factory(**kwargs):
    return lambda: ArrayIterator(PATCHES, BATCH, **kwargs)


def params_of(state):
    return jax.device_get((state.g_params, state.d_params, state.g_opt_state, state.d_opt_state))


# ----------------------------------------------------------------------------- the train step
@pytest.fixture(scope="module")
def single_device():
    mesh = sharding.make_data_mesh(jax.devices()[:1])
    programs = gan_train.programs_for(tiny_config(), mesh)
    return mesh, programs


def test_one_step_uses_the_papers_losses_and_adam(single_device):
    mesh, programs = single_device
    state = programs.init(jax.random.key(23))
    batch = {"image": jnp.asarray(PATCHES[:BATCH])}
    key = gan_train.step_key(state)
    before = jax.device_get(state)
    new_state, metrics = programs.train_step(state, batch, key)
    metrics = jax.device_get(metrics)
    assert int(new_state.step) == 1
    assert set(metrics) == {"g_loss", "d_loss", "d_real_accuracy", "d_fake_accuracy", "g_grad_norm", "d_grad_norm"}

    # the losses by hand from the logits of the old parameters on the same z
    z = jax.random.normal(key, (BATCH, 100))
    fake = programs.generate(before.g_params, z)
    d_apply = jax.jit(lambda x: programs.discriminator.apply({"params": before.d_params}, x))
    fake_logits, real_logits = np.asarray(d_apply(fake), np.float64), np.asarray(d_apply(batch["image"]), np.float64)
    log_sigmoid = lambda x: -np.logaddexp(0, -x)  # noqa: E731
    np.testing.assert_allclose(metrics["g_loss"], -np.mean(log_sigmoid(fake_logits)), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["d_loss"], -np.mean(log_sigmoid(real_logits)) - np.mean(log_sigmoid(-fake_logits)), rtol=1e-5
    )
    assert metrics["d_real_accuracy"] == np.mean(real_logits > 0)
    assert metrics["d_fake_accuracy"] == np.mean(fake_logits < 0)

    # Adam's first step moves a parameter by lr * g / (|g| + eps): by lr = 5e-4 unless |g| ~ eps
    change = np.abs(np.asarray(new_state.g_params["Dense_0"]["kernel"]) - before.g_params["Dense_0"]["kernel"])
    assert np.median(change) > 0.99 * 5e-4 and change.max() < 1.0001 * 5e-4


def test_sharded_step_equals_single_device_step(single_device):
    assert jax.device_count() == 4, "conftest forces 4 CPU devices"
    _, programs_1 = single_device
    mesh_4 = sharding.make_data_mesh()
    programs_4 = gan_train.programs_for(tiny_config(), mesh_4)
    batch = PATCHES[:BATCH]
    results = []
    for mesh, programs in ((None, programs_1), (mesh_4, programs_4)):
        state = programs.init(jax.random.key(23))
        for step in range(2):
            images = batch if mesh is None else jax.device_put(batch, sharding.batch_sharded(mesh))
            state, metrics = programs.train_step(state, {"image": images}, gan_train.step_key(state))
        results.append((params_of(state), jax.device_get(metrics)))
    assert len(state.g_params["Dense_0"]["kernel"].sharding.device_set) == 4
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5), results[0], results[1])


# ----------------------------------------------------------------------------- the run loop
@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    state = gan_train.train_and_evaluate(tiny_config(eval_every=3), workdir, factory())
    return workdir, state


def test_run_writes_metrics_samples_config_and_ranked_checkpoints(uninterrupted_run):
    workdir, state = uninterrupted_run
    assert int(state.step) == 6
    records = monitor.read_metrics(workdir / "metrics.jsonl")
    train_records = [r for r in records if "g_loss" in r]
    assert [r["step"] for r in train_records] == [2, 3, 4, 5, 6]  # step 1 starts the clock
    assert all(r["images_per_second"] > 0 and r["d_grad_norm"] > 0 for r in train_records)
    quality_records = [r for r in records if "quality/frechet" in r]
    assert [r["step"] for r in quality_records] == [3, 6]
    assert quality_records[0]["quality/frechet"] > 0
    ks = {k: v for k, v in quality_records[0].items() if k.startswith("quality/ks/")}
    assert len(ks) == 9  # every quantity; null where a 3-step generator's patches leave it undefined
    assert all(v is None or 0 <= v <= 1 for v in ks.values())
    assert (workdir / "samples" / "step_0000006.png").stat().st_size > 1000
    assert json.loads((workdir / "config.json").read_text())["model"] == {
        "arch": "simple",
        "latent_dim": 100,
        "loss": "non_saturating",
        "ema_decay": 0.0,
    }
    assert state.g_ema_params is None  # the paper's config keeps no moving average
    checkpoints = checkpoint_lib.RunCheckpoints(workdir / "checkpoints", fingerprint=None)
    best = min(quality_records, key=lambda r: r["quality/frechet"])["step"]
    assert checkpoints.best_step() == best
    assert checkpoints.all_steps() == sorted({4, 6, best})  # last two, and the best ranked
    checkpoints.close()


def test_killed_run_resumes_to_the_same_parameters(uninterrupted_run, tmp_path):
    workdir, reference = uninterrupted_run
    config = tiny_config(eval_every=3)
    with pytest.raises(KeyboardInterrupt):
        gan_train.train_and_evaluate(config, tmp_path, factory(fail_at=5))  # dies in step 6
    checkpoints = checkpoint_lib.RunCheckpoints(tmp_path / "checkpoints", fingerprint=None)
    assert checkpoints.latest_step() == 4
    checkpoints.close()
    resumed = gan_train.train_and_evaluate(config, tmp_path, factory())
    assert int(resumed.step) == 6
    jax.tree.map(np.testing.assert_array_equal, params_of(resumed), params_of(reference))
    np.testing.assert_array_equal(jax.random.key_data(resumed.rng), jax.random.key_data(reference.rng))


def test_a_resumed_run_never_writes_a_step_twice_in_its_metrics(tmp_path):
    config = tiny_config(total_steps=8)
    config.checkpoint_every = 4
    with pytest.raises(KeyboardInterrupt):
        gan_train.train_and_evaluate(config, tmp_path, factory(fail_at=7))  # dies in step 8
    logged_before = [r["step"] for r in monitor.read_metrics(tmp_path / "metrics.jsonl") if "g_loss" in r]
    assert max(logged_before) == 6  # logged after the last checkpoint (step 4)
    gan_train.train_and_evaluate(config, tmp_path, factory())
    logged = [r["step"] for r in monitor.read_metrics(tmp_path / "metrics.jsonl") if "g_loss" in r]
    assert logged == sorted(set(logged)) and logged[-1] == 8  # steps 5-6 trained again, written once


def test_checkpoint_of_another_model_config_is_refused(uninterrupted_run):
    workdir, _ = uninterrupted_run
    config = tiny_config(eval_every=3)
    config.model.latent_dim = 64
    saved = checkpoint_lib.model_fingerprint(tiny_config().model.to_dict())
    wanted = checkpoint_lib.model_fingerprint(config.model.to_dict())
    assert saved != wanted
    with pytest.raises(checkpoint_lib.FingerprintMismatchError, match=f"fingerprint {saved}.*fingerprint {wanted}"):
        gan_train.train_and_evaluate(config, workdir, factory())
    with pytest.raises(checkpoint_lib.FingerprintMismatchError, match=wanted):
        gan.load(workdir, fingerprint=wanted)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(monitor.NonFiniteError, match=r"step 3 .*d_loss=nan.*checkpoints/2"):
        gan_train.train_and_evaluate(tiny_config(), tmp_path, factory(nan_at=2))  # batch of step 3
    checkpoints = checkpoint_lib.RunCheckpoints(tmp_path / "checkpoints", fingerprint=None)
    assert checkpoints.all_steps() == [2]
    checkpoints.close()
    generator = gan.load(tmp_path)
    assert generator.step == 2
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(jax.device_get(generator.params)))


def test_bad_batches_are_refused_with_a_clear_message(tmp_path):
    wrong_shape = lambda: ArrayIterator(PATCHES[:, :64, :64], BATCH)  # noqa: E731
    with pytest.raises(ValueError, match=r"shape \(4, 64, 64, 1\), expected \(4, 128, 128, 1\)"):
        gan_train.train_and_evaluate(tiny_config(), tmp_path / "a", wrong_shape)
    config = tiny_config()
    config.batch_size = 6
    with pytest.raises(ValueError, match="multiple of the 4 devices"):
        gan_train.train_and_evaluate(config, tmp_path / "b", factory())


# ----------------------------------------------------------------------------- loading and files
def test_load_generates_with_the_trained_parameters(uninterrupted_run, tmp_path):
    workdir, state = uninterrupted_run
    generator = gan.load(workdir, step="latest")
    assert generator.step == 6 and generator.latent_dim == 100
    z = generator.sample_latents(8, seed=1)
    images = np.asarray(generator.generate(z))
    expected = gan_train.programs_for(tiny_config(), sharding.make_data_mesh()).generate(state.g_params, z)
    np.testing.assert_array_equal(images, np.asarray(expected))
    with pytest.raises(ValueError, match=r"latents must have shape \[N, 100\]"):
        generator.generate(np.zeros((2, 64)))

    png = gan.sample_grid_png(images, tmp_path / "grid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = gan.write_fits_cube(images, tmp_path / "cube.fits", latents=z, header=generator.fits_header())
    with fits.open(path) as hdus:
        assert hdus[0].header["BUNIT"] == "G" and hdus[0].header["GANFP"] == generator.fingerprint
        np.testing.assert_allclose(hdus[0].data, images[..., 0] * 1000.0, rtol=1e-6)
        np.testing.assert_array_equal(hdus["LATENTS"].data, z)


def test_loading_a_generator_again_compiles_nothing_new(uninterrupted_run):
    """Each load builds a new module and parameters; the generator's function is equal across loads, so its
    jitted programs (generation, the steering programs that take it as a static argument) are reused."""
    from solarjax.models.gan import apply_generator

    workdir, _ = uninterrupted_run
    first, second = gan.load(workdir, step="latest"), gan.load(workdir, step="latest")
    assert first.apply_fn == second.apply_fn and hash(first.apply_fn) == hash(second.apply_fn)
    z = first.sample_latents(5, seed=2)
    images = np.asarray(first.generate(z))
    compiled = apply_generator._cache_size()
    np.testing.assert_array_equal(np.asarray(second.generate(z)), images)
    assert apply_generator._cache_size() == compiled


def test_load_refuses_missing_runs_and_unknown_steps(uninterrupted_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no GAN checkpoints"):
        gan.load(tmp_path)
    with pytest.raises(ValueError, match="step must be 'best', 'latest' or one of the saved steps"):
        gan.load(uninterrupted_run[0], step=1)


@flax.struct.dataclass
class PreEmaGanState:
    """The train-state layout of checkpoints written before the generator's EMA existed."""

    step: jax.Array
    g_params: object
    d_params: object
    d_stats: object
    g_opt_state: object
    d_opt_state: object
    rng: jax.Array


def _save_old_checkpoint(workdir, model):
    """A checkpoint as the trainer wrote it before 'loss' / 'ema_decay' existed: old model config, old state."""
    config = tiny_config()
    config.model = ml_collections.ConfigDict(model)
    mesh = sharding.make_data_mesh()
    programs = gan_train.programs_for(tiny_config(), mesh)
    state = programs.init(jax.random.key(3))
    old = PreEmaGanState(**{name: getattr(state, name) for name in PreEmaGanState.__dataclass_fields__})
    fingerprint = checkpoint_lib.model_fingerprint(model)
    checkpoints = checkpoint_lib.RunCheckpoints(workdir / "checkpoints", fingerprint=fingerprint)
    # written as the trainer did then: the state dataclass itself, not `checkpoint.stored_tree`
    checkpoints.manager.save(
        3,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(old),
            data_iterator=grain.checkpoint.CheckpointSave(ArrayIterator(PATCHES, BATCH)),
            run=ocp.args.JsonSave({"fingerprint": fingerprint, "config": loop.config_dict(config)}),
        ),
    )
    checkpoints.close()
    return programs, state


def test_checkpoints_from_before_the_ema_still_load(tmp_path):
    programs, state = _save_old_checkpoint(tmp_path, {"arch": "simple", "latent_dim": 100})
    generator = gan.load(tmp_path)
    assert generator.step == 3
    z = generator.sample_latents(2, seed=4)
    np.testing.assert_allclose(generator.generate(z), programs.generate(state.g_params, z), atol=1e-6)


def test_checkpoint_of_an_unknown_architecture_is_refused_by_name(tmp_path):
    _save_old_checkpoint(tmp_path, {"arch": "dcgan", "latent_dim": 100})
    with pytest.raises(ValueError, match="unknown GAN architecture 'dcgan'"):
        gan.load(tmp_path)


def test_default_config_with_ema_logs_realism_ranks_by_it_and_samples_with_the_ema(tmp_path):
    config = tiny_config(
        total_steps=4, eval_every=2, arch="resize_conv_small", name="gan_synthetic", matching_terms=False
    )
    assert config.quality.best_metric == "realism_score"
    config.model.ema_decay = 0.99
    config.model.ema_start = 1  # the default's 100 would leave a 4-step run on its raw weights
    state = gan_train.train_and_evaluate(config, tmp_path, factory())
    records = [r for r in monitor.read_metrics(tmp_path / "metrics.jsonl") if "quality/realism_score" in r]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        assert 0 <= record["quality/realism_score"] <= 1
        assert {
            "quality/realism/ks_noise_width_gauss",
            "quality/realism/ks_spectral_slope",
            "quality/realism/ks_mean_gradient_gauss_per_pixel",
            "quality/realism/strong_pixel_ratio",
            "quality/realism/peak_ratio_max",
            "quality/frechet",
            "quality/ks_mean",
        } <= set(record)
    best = min(records, key=lambda r: r["quality/realism_score"])["step"]
    generator = gan.load(tmp_path)
    assert generator.step == best
    latest = gan.load(tmp_path, step="latest")
    z = latest.sample_latents(2, seed=1)
    expected = gan_train.programs_for(config, sharding.make_data_mesh()).generate(state.g_ema_params, z)
    np.testing.assert_array_equal(np.asarray(latest.generate(z)), np.asarray(expected))
    assert not np.allclose(jax.tree.leaves(state.g_ema_params)[0], jax.tree.leaves(state.g_params)[0])


@pytest.mark.parametrize(("name", "best_step"), [("gan_synthetic", 4), ("gan_paper", 2)])
def test_load_best_ranks_by_the_figure_the_run_trained_with(tmp_path, name, best_step):
    # step 2 has the lower Frechet, step 4 the lower realism score: 'best' follows the run's best_metric
    config = tiny_config(arch="resize_conv_small", name=name)
    state = gan_train.programs_for(config, sharding.make_data_mesh()).init(jax.random.key(3))
    fingerprint = checkpoint_lib.model_fingerprint(config.model.to_dict())
    checkpoints = checkpoint_lib.RunCheckpoints(
        tmp_path / "checkpoints", fingerprint=fingerprint, best_metric=config.quality.best_metric
    )
    for step, frechet, realism in ((2, 0.1, 0.6), (4, 0.5, 0.3)):
        metrics = {"frechet": frechet, "realism_score": realism}
        checkpoints.save(step, state, ArrayIterator(PATCHES, BATCH), loop.config_dict(config), metrics)
        checkpoints.wait_until_finished()
    checkpoints.close()
    assert gan.load(tmp_path).step == best_step
    assert gan.load(tmp_path, step="latest").step == 4


# ----------------------------------------------------------------------------- retention, quality
def test_checkpoints_keep_the_last_k_and_the_best(tmp_path):
    checkpoints = checkpoint_lib.RunCheckpoints(tmp_path, fingerprint="abc", keep_last=2, best_metric="frechet")
    iterator = ArrayIterator(PATCHES, 2)
    frechet = {1: 5.0, 2: 1.0, 3: 4.0, 4: None, 5: 2.0, 6: None}
    for step, value in frechet.items():
        next(iterator)
        state = {"w": jnp.full((3,), float(step))}
        checkpoints.save(step, state, iterator, {"note": "test"}, None if value is None else {"frechet": value})
    checkpoints.wait_until_finished()
    assert checkpoints.all_steps() == [2, 5, 6] and checkpoints.best_step() == 2
    fresh = ArrayIterator(PATCHES, 2)
    restored = checkpoints.restore(2, {"w": jnp.zeros((3,))}, fresh)
    np.testing.assert_array_equal(restored["w"], [2.0, 2.0, 2.0])
    assert fresh.position == 2
    assert checkpoints.run_info(2) == {"fingerprint": "abc", "config": {"note": "test"}}
    checkpoints.close()
    other = checkpoint_lib.RunCheckpoints(tmp_path, fingerprint="xyz")
    with pytest.raises(checkpoint_lib.FingerprintMismatchError, match="fingerprint abc.*fingerprint xyz"):
        other.restore_state(2, {"w": jnp.zeros((3,))})
    other.close()


def test_frechet_distance_of_gaussians_has_the_closed_form():
    # commuting (diagonal) covariances: |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    assert quality.frechet_distance(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expected)
    # rotation invariance: rotate both Gaussians by the same orthogonal matrix
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = quality.frechet_distance(q @ mu_a, q @ np.diag(a) @ q.T, q @ mu_b, q @ np.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)
    # from samples: the fitted Gaussians approach the true distance
    rng = np.random.default_rng(1)
    fit_a = quality.gaussian_fit(rng.normal(size=(200_000, 3)) * np.sqrt(a) + mu_a)
    fit_b = quality.gaussian_fit(rng.normal(size=(200_000, 3)) * np.sqrt(b) + mu_b)
    assert quality.frechet_distance(*fit_a, *fit_b) == pytest.approx(expected, abs=0.05)


def test_ks_distances():
    assert quality.ks_distance(np.arange(10.0), np.arange(10.0) + 100) == 1.0
    assert quality.ks_distance(np.arange(10.0), np.arange(10.0)) == 0.0
    # half of a's mass lies below all of b: the CDF gap is 0.5; NaN (undefined) values are left out
    assert quality.ks_distance(np.array([0.0, 1.0, 5.0, 6.0, np.nan]), np.array([4.0, 7.0])) == 0.5
    assert math.isnan(quality.ks_distance(np.array([np.nan]), np.array([1.0])))
    figures = quality.ks_distances({"tuf": np.arange(5.0), "psep": np.zeros(3)}, {"tuf": np.arange(5.0)})
    assert figures == {"tuf": 0.0}


def test_quality_figures_separate_real_like_patches_from_noise():
    encoder = quality.random_feature_encoder(0)
    assert encoder is quality.random_feature_encoder(0)  # fixed: the same features every time
    reference = quality.summarise([bipole_patches(64, seed=1)], encoder)
    similar = quality.summarise([bipole_patches(64, seed=2)], encoder)
    noise = np.clip(np.random.default_rng(3).normal(0, 0.5, size=(64, 128, 128, 1)), -1, 1).astype(np.float32)
    different = quality.summarise([noise], encoder)
    near, far = quality.quality_figures(similar, reference), quality.quality_figures(different, reference)
    assert reference.features.shape == (64, 128) and reference.quantities["tuf"].shape == (64,)
    assert near["frechet"] < 0.1 * far["frechet"]
    assert near["ks/tuf"] < 0.3 < far["ks/tuf"]
    assert near["ks_mean"] < far["ks_mean"]


def test_default_pipeline_iterator_resumes_through_grain_checkpoints(tmp_path):
    """The real input pipeline (grain DataLoader over a built sharp_patches) resumes exactly."""
    from data_builders.sharp_patches import build

    build("synthetic", tmp_path / "tfds", num_examples=48)
    config = tiny_config(total_steps=2)
    config.data.data_dir = str(tmp_path / "tfds")
    gan_train.train_and_evaluate(config, tmp_path / "resumed")
    config.total_steps = 3
    resumed = gan_train.train_and_evaluate(config, tmp_path / "resumed")
    uninterrupted = gan_train.train_and_evaluate(config, tmp_path / "uninterrupted")
    assert int(resumed.step) == 3
    jax.tree.map(np.testing.assert_array_equal, params_of(resumed), params_of(uninterrupted))
    saved = (tmp_path / "resumed" / "checkpoints" / "2" / "data_iterator").glob("process_0-of-1.json")
    assert json.loads(next(saved).read_text())  # grain's own iterator state, one file per process
