"""SimSiam: architecture, loss and stop-gradient, optimiser, sharding, resume, monitors, user API.

Networks here are narrow (ResNet-18 of width 4 on 32x32 patches) so that the file stays fast; the
full-size shapes are checked with `jax.eval_shape`.
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from helpers import require_torch
from jax.experimental.compilation_cache import compilation_cache as compilation_cache_lib

from solarjax import augment, ssl
from solarjax.data.synthetic import generate
from solarjax.models.resnet import ResNet18
from solarjax.models.simsiam import Predictor, Projector, SimSiam, collapse_level, negative_cosine, simsiam_loss
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import loop, monitor, sharding
from solarjax.train import simsiam as simsiam_train

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL = 32  # image side of the small test patches


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """A persistent compilation cache for this file: the runs below compile the same step once."""
    previous = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    compilation_cache_lib.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    yield
    compilation_cache_lib.reset_cache()
    jax.config.update("jax_compilation_cache_dir", previous[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])


def _param_count(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


def _small_patches(n: int, seed: int = 0) -> np.ndarray:
    """Realistic patches reduced to [n, 32, 32, 1] by 4x4 block means."""
    images = generate(n, seed=seed).images
    return images.reshape(n, SMALL, 4, SMALL, 4).mean((2, 4))[..., None].astype(np.float32)


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    """96 realistic patches [96, 32, 32, 1]: 64 to train on, 32 held out."""
    return _small_patches(96, seed=5)


def _tiny_model() -> SimSiam:
    return SimSiam(input_channels=1, width=4, projector_dims=(16, 16, 8), predictor_hidden=32)


# ---------------------------------------------------------------------------------- architecture
def test_resnet18_has_the_torchvision_layout():
    def count(channels):
        variables = jax.eval_shape(
            lambda: ResNet18(input_channels=channels).init(
                jax.random.key(0), jnp.zeros((2, 128, 128, channels)), train=False
            )
        )
        return _param_count(variables["params"])

    # torchvision resnet18 without its fc layer, with a 1-channel stem: 11,689,512 - 513,000 - 2 * 3,136
    assert count(1) == 11_170_240
    assert count(3) - count(1) == 2 * 64 * 7 * 7  # only the stem grows with the input channels
    features = jax.eval_shape(
        lambda: ResNet18().init_with_output(jax.random.key(0), jnp.zeros((5, 128, 128, 1)), train=False)[0]
    )
    assert features.shape == (5, 512)
    with pytest.raises(ValueError, match=r"expects images \[N, H, W, 1\], got shape \(5, 128, 128, 3\)"):
        ResNet18().init(jax.random.key(0), jnp.zeros((5, 128, 128, 3)), train=False)


def test_heads_have_the_paper_sizes_and_batchnorm_placement():
    variables = jax.eval_shape(lambda: SimSiam().init(jax.random.key(0), jnp.zeros((2, 128, 128, 1)), train=False))
    projector, predictor = variables["params"]["projector"], variables["params"]["predictor"]
    assert {k: v["kernel"].shape for k, v in projector.items() if k.startswith("Dense")} == {
        "Dense_0": (512, 512),
        "Dense_1": (512, 512),
        "Dense_2": (512, 100),
    }
    assert all("bias" not in v for k, v in projector.items() if k.startswith("Dense"))  # BN follows each
    assert set(projector) == {"Dense_0", "BatchNorm_0", "Dense_1", "BatchNorm_1", "Dense_2"}  # last BN: no affine
    assert "BatchNorm_2" in variables["batch_stats"]["projector"]
    assert predictor["Dense_0"]["kernel"].shape == (100, 128) and "bias" not in predictor["Dense_0"]
    assert predictor["Dense_1"]["kernel"].shape == (128, 100) and predictor["Dense_1"]["bias"].shape == (100,)
    assert set(predictor) == {"Dense_0", "BatchNorm_0", "Dense_1"}  # no BN on the output


def test_batchnorm_momentum_is_pytorch_0_1():
    x = jax.random.normal(jax.random.key(0), (64, 20)) + 3.0
    projector = Projector(dims=(8, 4))
    variables = projector.init(jax.random.key(1), x, train=False)
    _, updated = projector.apply(variables, x, train=True, mutable=["batch_stats"])
    hidden = x @ variables["params"]["Dense_0"]["kernel"]
    running = updated["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(running["mean"], 0.1 * hidden.mean(0), rtol=1e-5, atol=1e-6)  # 0.9 * 0 + 0.1 * m
    np.testing.assert_allclose(running["var"], 0.9 + 0.1 * hidden.var(0), rtol=1e-5)


# ------------------------------------------------------------------------------------------ loss
def test_loss_is_the_symmetric_negative_cosine():
    z = jax.random.normal(jax.random.key(0), (16, 10))
    other = jax.random.normal(jax.random.key(1), (16, 10))
    np.testing.assert_allclose(simsiam_loss(z, z, z, z), -1.0, atol=1e-6)
    np.testing.assert_allclose(simsiam_loss(-3 * z, -z, z, z), 1.0, atol=1e-6)
    orthogonal = other - jnp.sum(other * z, -1, keepdims=True) / jnp.sum(z * z, -1, keepdims=True) * z
    np.testing.assert_allclose(negative_cosine(orthogonal, z), 0.0, atol=1e-6)
    expected = -np.mean(np.sum(z * other, -1) / np.linalg.norm(z, axis=-1) / np.linalg.norm(other, axis=-1))
    np.testing.assert_allclose(simsiam_loss(z, z, other, other), expected, rtol=1e-5)


def test_no_gradient_flows_through_the_target_branch():
    projector, predictor = Projector(dims=(16, 16, 8)), Predictor(hidden=32, out=8)
    features = jax.random.normal(jax.random.key(0), (2, 32, 12))  # the backbone features of two views
    projector_vars = projector.init(jax.random.key(1), features[0], train=False)
    predictor_vars = predictor.init(jax.random.key(2), jnp.zeros((32, 8)), train=False)

    def loss(online, target):
        def project(params, x):
            return projector.apply(
                {"params": params, "batch_stats": projector_vars["batch_stats"]}, x, train=True, mutable=["batch_stats"]
            )[0]

        def predict(z):
            return predictor.apply(
                {"params": online["predictor"], "batch_stats": predictor_vars["batch_stats"]},
                z,
                train=True,
                mutable=["batch_stats"],
            )[0]

        z1, z2 = project(online["projector"], features[0]), project(online["projector"], features[1])
        t1, t2 = project(target, features[0]), project(target, features[1])  # targets from a copy of the weights
        return simsiam_loss(predict(z1), predict(z2), t1, t2)

    online = {"projector": projector_vars["params"], "predictor": predictor_vars["params"]}
    online_grads, target_grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(online, projector_vars["params"])
    assert all(np.all(g == 0) for g in jax.tree.leaves(target_grads))
    assert all(optax.tree.norm(g) > 1e-4 for g in online_grads.values())


def test_collapse_level():
    rows = jax.random.normal(jax.random.key(0), (4000, 100))
    assert float(collapse_level(rows)) < 0.02  # spread over the sphere
    assert float(collapse_level(jnp.ones((64, 100)) * jnp.arange(100.0))) == 1.0  # one direction
    nearly = jnp.ones((64, 100)) + 1e-3 * rows[:64]
    assert float(collapse_level(nearly)) > 0.95


# ------------------------------------------------------------------------------------- optimiser
def test_optimizer_is_torch_sgd_with_a_fixed_predictor_lr():
    params = {"backbone": {"w": jnp.array([1.0, -2.0])}, "predictor": {"w": jnp.array([0.5])}}
    grads = {"backbone": {"w": jnp.array([0.3, 0.1])}, "predictor": {"w": jnp.array([-0.2])}}
    lr, momentum, decay = 0.0125, 0.9, 5e-4
    assert simsiam_train.paper_learning_rate(64) == lr
    tx = simsiam_train.make_optimizer(lr, momentum=momentum, weight_decay=decay)
    state, p, buffer = tx.init(params), params, None
    for _ in range(3):  # torch.optim.SGD: d = g + wd p; buf = m buf + d; p -= lr buf
        updates, state = tx.update(grads, state, p)
        d = jax.tree.map(lambda g, w: g + decay * w, grads, p)
        buffer = d if buffer is None else jax.tree.map(lambda b, x: momentum * b + x, buffer, d)
        expected = jax.tree.map(lambda w, b: w - lr * b, p, buffer)
        p = optax.apply_updates(p, updates)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, expected)

    decayed = simsiam_train.make_optimizer(
        lr, momentum=0.0, weight_decay=0.0, cosine_decay_steps=10, fixed_predictor_lr=True
    )
    state = decayed.init(params)
    for _ in range(10):  # the 10th update runs at step 9 of 10 of the cosine
        updates, state = decayed.update(grads, state, params)
    np.testing.assert_allclose(updates["predictor"]["w"], -lr * grads["predictor"]["w"], rtol=1e-6)
    cosine = 0.5 * (1 + np.cos(np.pi * 9 / 10))
    np.testing.assert_allclose(updates["backbone"]["w"], -lr * cosine * grads["backbone"]["w"], rtol=1e-5)


# ------------------------------------------------------------------------------ parity with torch
def _copy_into_torch(flax_params, flax_stats, torch_model):
    """Loads flax SimSiam variables into `benchmarks.torch_simsiam_reference.SimSiam`."""
    import torch

    def conv(kernel):  # HWIO -> OIHW
        return torch.from_numpy(np.asarray(kernel).transpose(3, 2, 0, 1).copy())

    def bn(module, params, stats):
        if params is not None:
            module.weight.data = torch.from_numpy(np.asarray(params["scale"]).copy())
            module.bias.data = torch.from_numpy(np.asarray(params["bias"]).copy())
        module.running_mean.data = torch.from_numpy(np.asarray(stats["mean"]).copy())
        module.running_var.data = torch.from_numpy(np.asarray(stats["var"]).copy())

    def dense(module, params):
        module.weight.data = torch.from_numpy(np.asarray(params["kernel"]).T.copy())
        if "bias" in params:
            module.bias.data = torch.from_numpy(np.asarray(params["bias"]).copy())

    bp, bs = flax_params["backbone"], flax_stats["backbone"]
    torch_model.backbone.stem[0].weight.data = conv(bp["stem_conv"]["kernel"])
    bn(torch_model.backbone.stem[1], bp["stem_bn"], bs["stem_bn"])
    for index, block in enumerate(torch_model.backbone.blocks):
        name = f"stage{index // 2 + 1}_block{index % 2 + 1}"
        p, s = bp[name], bs[name]
        block.conv1.weight.data, block.conv2.weight.data = conv(p["Conv_0"]["kernel"]), conv(p["Conv_1"]["kernel"])
        bn(block.bn1, p["BatchNorm_0"], s["BatchNorm_0"])
        bn(block.bn2, p["BatchNorm_1"], s["BatchNorm_1"])
        if "shortcut_conv" in p:
            block.shortcut[0].weight.data = conv(p["shortcut_conv"]["kernel"])
            bn(block.shortcut[1], p["shortcut_bn"], s["shortcut_bn"])
    pp, ps = flax_params["projector"], flax_stats["projector"]
    for i, (linear, norm) in enumerate(((0, 1), (3, 4), (6, 7))):
        dense(torch_model.projector[linear], pp[f"Dense_{i}"])
        bn(torch_model.projector[norm], pp.get(f"BatchNorm_{i}"), ps[f"BatchNorm_{i}"])
    qp, qs = flax_params["predictor"], flax_stats["predictor"]
    dense(torch_model.predictor[0], qp["Dense_0"])
    bn(torch_model.predictor[1], qp["BatchNorm_0"], qs["BatchNorm_0"])
    dense(torch_model.predictor[3], qp["Dense_1"])


def _single_device_step(config, state, images):
    """One jitted `train_step` of `config` on device 0: (state before on the host, state after, metrics, key).

    The parity and sharding tests run this same program, so it compiles once for both (file cache).
    """
    model, optimizer = simsiam_train.make_model(config.model), simsiam_train.optimizer_of(config)
    step = jax.jit(functools.partial(simsiam_train.train_step, model, optimizer, simsiam_train.recipe_of(config)))
    key = simsiam_train.step_key(state)
    on_device_0 = jax.device_put((state, {"image": images}, key), jax.devices()[0])
    before = jax.device_get((state.params, state.batch_stats))
    return before, *step(*on_device_0), key


@pytest.mark.parity
def test_one_train_step_matches_the_pytorch_reference(patches):
    torch = require_torch()
    from benchmarks import torch_simsiam_reference as reference

    config = _tiny_config(1)
    _, _, state = simsiam_train.create_state(config, sharding.make_data_mesh())
    images = patches[: config.batch_size]
    (params, stats), new_state, metrics, key = _single_device_step(config, state, images)
    views = jax.jit(augment.two_views, static_argnums=2)(key, jnp.asarray(images), simsiam_train.recipe_of(config))

    torch_model = reference.SimSiam(width=4, projector_dims=(16, 16, 8), predictor_hidden=32).double()
    _copy_into_torch(
        jax.tree.map(lambda x: np.asarray(x, np.float64), params),
        jax.tree.map(lambda x: np.asarray(x, np.float64), stats),
        torch_model,
    )
    torch_step = reference.make_train_step(
        torch_model,
        simsiam_train.paper_learning_rate(config.batch_size),
        config.optimizer.momentum,
        config.optimizer.weight_decay,
    )
    as_torch = lambda x: torch.from_numpy(np.asarray(x, np.float64).transpose(0, 3, 1, 2).copy())  # noqa: E731
    torch_loss = float(torch_step(as_torch(views[0]), as_torch(views[1])))
    np.testing.assert_allclose(float(metrics["loss"]), torch_loss, atol=2e-5)
    pairs = {
        "stem": (("backbone", "stem_conv", "kernel"), torch_model.backbone.stem[0].weight),
        "projector": (("projector", "Dense_0", "kernel"), torch_model.projector[0].weight),
        "predictor": (("predictor", "Dense_1", "kernel"), torch_model.predictor[3].weight),
    }
    for name, (path, theirs) in pairs.items():
        before, after = params, new_state.params
        for key in path:
            before, after = before[key], after[key]
        theirs = theirs.detach().numpy()
        theirs = theirs.transpose(2, 3, 1, 0) if theirs.ndim == 4 else theirs.T
        ours_step, theirs_step = np.asarray(after) - before, theirs - before
        assert np.abs(theirs_step).max() > 0
        np.testing.assert_allclose(
            ours_step, theirs_step, rtol=1e-3, atol=1e-3 * np.abs(theirs_step).max(), err_msg=name
        )


# -------------------------------------------------------------------------------------- sharding
def test_sharded_step_equals_single_device_step(patches):
    assert jax.device_count() == 4
    config = _tiny_config(1)  # the step of the runs below: its sharded compilation is shared with them
    mesh = sharding.make_data_mesh()
    model, optimizer, state = simsiam_train.create_state(config, mesh)
    images = patches[: config.batch_size]
    before, single, single_metrics, key = _single_device_step(config, state, images)

    step = functools.partial(simsiam_train.train_step, model, optimizer, simsiam_train.recipe_of(config))
    sharded_batch = {"image": jax.device_put(images, sharding.batch_sharded(mesh))}
    assert len(sharded_batch["image"].addressable_shards) == 4
    sharded, sharded_metrics = loop.jit_train_step(step, mesh)(state, sharded_batch, key)
    assert sharded.params["backbone"]["stem_conv"]["kernel"].sharding.is_fully_replicated
    # Same numbers up to the order of float32 sums (batch statistics are all-reduced across devices).
    np.testing.assert_allclose(sharded_metrics["loss"], single_metrics["loss"], atol=2e-5)  # loss in [-1, 1]
    np.testing.assert_allclose(sharded_metrics["collapse"], single_metrics["collapse"], atol=1e-4)
    np.testing.assert_allclose(sharded_metrics["grad_norm"], single_metrics["grad_norm"], rtol=1e-3)

    def same_update(new_sharded, new_single, old):
        step_size = np.abs(np.asarray(new_single) - np.asarray(old)).max()
        np.testing.assert_allclose(new_sharded, new_single, rtol=0, atol=1e-3 * step_size + 1e-7)

    jax.tree.map(same_update, sharded.params, single.params, before[0])
    jax.tree.map(same_update, sharded.batch_stats, single.batch_stats, before[1])


# ------------------------------------------------------------------------------------- monitors
def test_neighbour_agreement_is_high_for_physics_aware_vectors_and_low_for_random_ones():
    rng = np.random.default_rng(0)
    quantities = {name: rng.lognormal(size=300) for name in simsiam_train.KNN_QUANTITIES}
    quantities["r_value"][:20] = np.nan  # undefined values drop out of the pairs
    informative = np.stack([np.log(np.nan_to_num(quantities[n], nan=1.0)) for n in quantities], 1)
    agreement = simsiam_train.neighbour_agreement(informative + 0.01 * rng.normal(size=informative.shape), quantities)
    assert min(agreement.values()) > 0.9
    random = simsiam_train.neighbour_agreement(rng.normal(size=(300, 16)), quantities)
    assert max(abs(v) for v in random.values()) < 0.2
    vectors = rng.normal(size=(50, 7))
    neighbours = simsiam_train.nearest_neighbours(vectors)
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1) + np.diag(np.full(50, np.inf))
    np.testing.assert_array_equal(neighbours, distances.argmin(1))


# ------------------------------------------------------------------------------ training and use
class ListIterator:
    """An in-memory batch iterator with grain's checkpoint protocol (get_state/set_state)."""

    def __init__(self, images: np.ndarray, batch_size: int):
        self.images, self.batch_size, self.position = images, batch_size, 0

    def __iter__(self):
        return self

    def __next__(self):
        start = (self.position * self.batch_size) % (len(self.images) - self.batch_size + 1)
        self.position += 1
        return {"image": self.images[start : start + self.batch_size]}

    def get_state(self) -> bytes:
        return json.dumps({"position": self.position}).encode()

    def set_state(self, state: bytes) -> None:
        self.position = json.loads(state.decode())["position"]

    def start_prefetch(self) -> None:
        pass


def _tiny_config(num_steps: int, eval_every: int = 0) -> ml_collections.ConfigDict:
    config = loop.load_config_file(REPO / "experiments" / "configs" / "simsiam_synthetic.py")
    config.image_size = SMALL
    config.model.width = 4
    config.model.projector_dims = (16, 16, 8)
    config.model.predictor_hidden = 32
    config.batch_size = 8
    config.total_steps = num_steps
    config.log_every = 1
    config.checkpoint_every = 2
    config.eval_every = eval_every
    return config


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, patches):
    """A run killed after its step-2 checkpoint and resumed to step 4, and an uninterrupted one."""
    root = tmp_path_factory.mktemp("simsiam_runs")
    heldout = simsiam_train.HeldOut.from_images(patches[64:94])  # 30: not a multiple of the 4 devices
    train = patches[:64]

    class KilledAfter(ListIterator):
        def __next__(self):
            if self.position == 3:
                raise KeyboardInterrupt("killed")
            return super().__next__()

    with pytest.raises(KeyboardInterrupt):
        simsiam_train.train_and_evaluate(
            _tiny_config(4, eval_every=2), root / "resumed", lambda: KilledAfter(train, 8), heldout
        )
    assert checkpoint_lib.RunCheckpoints(root / "resumed" / "checkpoints", fingerprint=None).all_steps() == [2]
    resumed = simsiam_train.train_and_evaluate(
        _tiny_config(4, eval_every=2), root / "resumed", lambda: ListIterator(train, 8), heldout
    )
    straight = simsiam_train.train_and_evaluate(
        _tiny_config(4, eval_every=2), root / "straight", lambda: ListIterator(train, 8), heldout
    )
    return root, resumed, straight


def test_resumed_run_reaches_the_uninterrupted_parameters(resumed_run):
    _, resumed, straight = resumed_run
    assert int(resumed.step) == int(straight.step) == 4
    jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
    jax.tree.map(np.testing.assert_array_equal, resumed.batch_stats, straight.batch_stats)


def test_run_directory_records_config_recipe_metrics_and_knn(resumed_run):
    root, _, _ = resumed_run
    config = json.loads((root / "straight" / "config.json").read_text())
    assert config["augment"] == augment.RECIPES["search"].to_dict()  # the synthetic config's recipe, resolved
    records = monitor.read_metrics(root / "straight" / "metrics.jsonl")
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(-1.0 <= r["loss"] <= 1.0 and 0.0 <= r["collapse"] <= 1.0 for r in steps)
    knn = [r for r in records if "knn/ssl_mean" in r]
    assert [r["step"] for r in knn] == [2, 4]
    assert all(
        -1.0 <= r[f"knn/{space}_{q}"] <= 1.0
        for r in knn
        for space in ("ssl", "pixel")
        for q in simsiam_train.KNN_QUANTITIES
    )


def test_a_run_of_another_architecture_is_refused(resumed_run, patches):
    root, _, _ = resumed_run
    config = _tiny_config(6)
    config.model.width = 8
    with pytest.raises(checkpoint_lib.FingerprintMismatchError, match="fingerprint"):
        simsiam_train.train_and_evaluate(config, root / "straight", lambda: ListIterator(patches[:64], 8))


def test_nan_in_the_data_stops_training_with_a_clear_error(tmp_path, patches):
    bad = patches[:16].copy()
    bad[3, 5, 5, 0] = np.nan
    with pytest.raises(monitor.NonFiniteError, match="non-finite training metrics at step 1"):
        simsiam_train.train_and_evaluate(_tiny_config(2), tmp_path, lambda: ListIterator(bad, 8))


def test_ssl_load_embeds_with_the_trained_encoder(resumed_run, patches):
    root, _, straight = resumed_run
    encoder = ssl.load(root / "straight")
    assert encoder.step == 4 and encoder.dim == 32 and not encoder.projection
    images = patches[:5]
    features = encoder.embed(images)
    assert features.shape == (5, 32) and features.dtype == jnp.float32
    expected = _tiny_model().apply(
        {"params": straight.params, "batch_stats": straight.batch_stats}, jnp.asarray(images), method=SimSiam.embed
    )
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encoder.embed(images[..., 0])[:2], features[:2], rtol=1e-6)  # [N, H, W] too
    np.testing.assert_allclose(encoder.embed(images[:2]), features[:2], rtol=1e-5, atol=1e-6)  # per patch

    projected = ssl.load(root / "straight", projection=True)
    assert projected.embed(images).shape == (5, 8) and projected.dim == 8
    assert ssl.load(root / "straight").fingerprint == encoder.fingerprint
    assert len({encoder.fingerprint, projected.fingerprint, ssl.load(root / "resumed", step=2).fingerprint}) == 3
    knn = {
        r["step"]: r["knn/ssl_mean"]
        for r in monitor.read_metrics(root / "straight" / "metrics.jsonl")
        if "knn/ssl_mean" in r
    }
    assert ssl.load(root / "straight", step="best").step == max(knn, key=knn.get)
    with pytest.raises(FileNotFoundError, match="no checkpoint for step 3"):
        ssl.load(root / "straight", step=3)
    with pytest.raises(FileNotFoundError, match="holds no SimSiam run"):
        ssl.load(root / "nowhere")


def test_configs_state_the_paper_settings():
    for name, recipe in (("simsiam_synthetic", "search"), ("simsiam_sharp_full", "paper")):
        config = loop.load_config_file(REPO / "experiments" / "configs" / f"{name}.py")
        assert simsiam_train.recipe_of(config) == augment.RECIPES[recipe]  # the demo searches with 'search'
        assert config.optimizer.base_lr == 0.05 and config.optimizer.momentum == 0.9
        assert tuple(config.model.projector_dims) == (512, 512, 100) and config.model.predictor_hidden == 128
    full = loop.load_config_file(REPO / "experiments" / "configs" / "simsiam_sharp_full.py")
    assert full.model.width == 64 and full.batch_size == 64
    assert simsiam_train.paper_learning_rate(full.batch_size, full.optimizer.base_lr) == 0.0125


def test_random_init_encoder_is_the_architecture_untrained_and_seeded():
    config = {"input_channels": 1, "width": 8, "projector_dims": (64, 64, 32), "predictor_hidden": 16}
    images = np.asarray(generate(3, seed=1).images, np.float32)
    first, again, other = (ssl.random_init(config, seed=s) for s in (0, 0, 1))
    features = np.asarray(first.embed(images))
    assert features.shape == (3, first.dim) and first.dim == 8 * 8 and first.step == 0
    np.testing.assert_array_equal(features, np.asarray(again.embed(images)))
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert not np.allclose(features, np.asarray(other.embed(images)))
    assert ssl.random_init(config, projection=True).dim == 32
