"""Training the SimSiam encoder: pure jitted step, optimiser and monitors, plugged into `solarjax.train.loop.run`.

    config = solarjax.configs.load("simsiam:synthetic")
    train_and_evaluate(config, workdir="runs/simsiam")     # `solarjax train simsiam` does this

or, step by step:

    model, optimizer = SimSiam(), make_optimizer(paper_learning_rate(64))
    state = init_state(model, optimizer, key)               # params, BN statistics, SGD state, step
    step = functools.partial(train_step, model, optimizer, augment.RECIPES["paper"])
    state, metrics = jax.jit(step)(state, batch, key)       # two views on device, one update

The step draws two views of the raw batch with `solarjax.augment` (the recipe of the config),
passes each view through the network on its own (BatchNorm statistics per view, as in the
reference code), and descends the symmetric negative cosine with stop-gradient on the targets.
SGD with momentum and weight decay (PyTorch's coupled form), lr = base_lr * batch / 256, an
optional cosine decay, and optionally a fixed (undecayed) predictor lr via `optax.multi_transform`.

Monitors: the loss, the collapse level of the l2-normalised predictions (0 = spread, 1 = a single
point), and a k-NN monitor on a held-out split: the Spearman correlation of each patch's physics
(TUF, PSEP, R) with that of its nearest neighbour in the embedding, next to the same figure for
nearest neighbours in pixel space. On `aia_patches` (``config.data.dataset``, C EUV channels) the
monitored quantities are the mean normalised intensity of each channel and mu (`aia_quantities`).

Physics head (beyond the paper; ``config.physics_aux_weight`` > 0, default 0 = the plain SimSiam
step, unchanged): the model gets a linear head on the backbone features (`with_physics_head`)
that predicts the exact quantities `PHYSICS_TARGETS` of each view, computed from the view itself
inside the step (`physics_targets`, label-free, so still self-supervised); the step descends
SimSiam + weight x `physics_aux_loss` (mean squared error of the batch-standardised targets).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from solarjax import augment, configs, physics, sharding
from solarjax.models import precision
from solarjax.models.simsiam import SimSiam, collapse_level, simsiam_loss
from solarjax.stats import correlations
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import loop
from solarjax.train.loop import step_key as step_key  # the key of a state's next step

KNN_QUANTITIES = ("tuf", "psep", "r_value")
PHYSICS_TARGETS = ("log_tuf", "psep", "log1p_r", "area", "abs_tilt")
TARGET_SETS = ("sharp", "cme")
"""``config.physics_targets``: what the physics head predicts, 'sharp' (default, `physics_targets`) or 'cme'
(`solarjax.cme_physics.ssl_targets` of coronagraph difference images)."""
SHARP_DATASET, AIA_DATASET = "sharp_patches", "aia_patches"
BEST_METRIC = "knn/ssl_mean"  # checkpoints are ranked by the k-NN monitor (higher is better)


@flax.struct.dataclass
class TrainState:
    """Everything a step changes: a pytree.

    Attributes:
      step: int32 scalar, number of updates done.
      params: network parameters (backbone, projector, predictor).
      batch_stats: BatchNorm running statistics.
      opt_state: optimiser state.
      rng: the run's base PRNG key; step t draws its views with ``fold_in(rng, t)`` (`step_key`).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


def make_model(model_config: Mapping[str, Any]) -> SimSiam:
    """The SimSiam network of a config's `model` section."""
    return SimSiam(
        input_channels=int(model_config["input_channels"]),
        width=int(model_config["width"]),
        projector_dims=tuple(int(d) for d in model_config["projector_dims"]),
        predictor_hidden=int(model_config["predictor_hidden"]),
        physics_head=int(model_config.get("physics_head", 0)),
    )


def physics_aux_weight_of(config: ml_collections.ConfigDict) -> float:
    """``config.physics_aux_weight`` (0 when absent), checked to be finite and >= 0."""
    weight = float(config.get("physics_aux_weight", 0.0))
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"config.physics_aux_weight must be a finite number >= 0, got {weight}")
    return weight


def target_set_of(config: ml_collections.ConfigDict) -> str:
    """``config.physics_targets`` ('sharp' when absent), checked against `TARGET_SETS`."""
    name = str(config.get("physics_targets", "sharp"))
    if name not in TARGET_SETS:
        raise ValueError(f"config.physics_targets must be one of {TARGET_SETS}, got {name!r}")
    return name


def target_names(target_set: str = "sharp") -> tuple[str, ...]:
    """The columns the physics head of `target_set` predicts."""
    if target_set == "cme":
        from solarjax import cme_physics

        return cme_physics.SSL_TARGETS
    return PHYSICS_TARGETS


def target_function(target_set: str = "sharp"):
    """``images [N, H, W, 1] -> [N, P]`` targets of `target_set` (NaN where undefined)."""
    if target_set == "cme":
        from solarjax import cme_physics

        return cme_physics.ssl_targets
    return physics_targets


def with_physics_head(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config, with ``model.physics_head`` = the number of its target set's columns (`target_names`)
    when its physics aux weight is > 0.

    Raises:
      ValueError: a weight > 0 with a model whose ``physics_head`` is set to another size.
    """
    if physics_aux_weight_of(config) == 0:
        return config
    names = target_names(target_set_of(config))
    size = config.model.get("physics_head", len(names))
    if size != len(names):
        raise ValueError(
            f"config.model.physics_head is {size}, the physics aux loss predicts {len(names)} quantities {names}"
        )
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.model.physics_head = len(names)
    return config


def physics_targets(images: jax.Array) -> jax.Array:
    """The self-supervised targets of each patch [N, H, W, 1] (B / 1000 G): [N, 5] float32.

    Columns `PHYSICS_TARGETS`: log TUF, PSEP, log(1 + R), area, |tilt| (rad) of `physics.quantities`
    (150 G threshold); NaN where a quantity is undefined (no positive or no negative polarity).
    """
    q = physics.quantities(images.astype(jnp.float32))
    return jnp.stack(
        [jnp.log(jnp.maximum(q["tuf"], 1e-6)), q["psep"], jnp.log1p(q["r_value"]), q["area"], jnp.abs(q["tilt"])],
        axis=1,
    )


def physics_aux_loss(predictions: jax.Array, targets: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Mean squared error of predictions [N, P] against targets [N, P] standardised over the batch.

    Each target column is centred and scaled by its mean and standard deviation over its finite
    entries in the batch; NaN targets take no part. Scalar; 0 when no target is finite.
    """
    defined = jnp.isfinite(targets)
    count = jnp.sum(defined, axis=0)
    zeroed = jnp.where(defined, targets, 0.0)
    mean = jnp.sum(zeroed, axis=0) / jnp.maximum(count, 1)
    variance = jnp.sum(jnp.where(defined, (targets - mean) ** 2, 0.0), axis=0) / jnp.maximum(count, 1)
    standardised = jnp.where(defined, (zeroed - mean) * jax.lax.rsqrt(variance + eps), 0.0)
    squared = jnp.where(defined, (predictions - standardised) ** 2, 0.0)
    return jnp.sum(squared) / jnp.maximum(jnp.sum(count), 1)


def paper_learning_rate(batch_size: int, base_lr: float = 0.05) -> float:
    """Peak learning rate base_lr * batch_size / 256 (the paper's 0.0125 at batch 64)."""
    return base_lr * batch_size / 256


def make_optimizer(
    learning_rate: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    cosine_decay_steps: int | None = None,
    fixed_predictor_lr: bool = False,
) -> optax.GradientTransformation:
    """SGD with momentum and weight decay, one group for the encoder and one for the predictor.

    Args:
      learning_rate: peak lr (see `paper_learning_rate`).
      momentum: heavy-ball momentum (PyTorch convention, the paper's 0.9).
      weight_decay: L2 coefficient added to the gradient before momentum, as torch.optim.SGD.
      cosine_decay_steps: decay the encoder's lr to 0 over this many steps (None: constant).
      fixed_predictor_lr: keep the predictor at the peak lr while the encoder decays (SimSiam's
        recommendation); False: the predictor follows the encoder's schedule.
    """
    schedule = (
        learning_rate if cosine_decay_steps is None else optax.cosine_decay_schedule(learning_rate, cosine_decay_steps)
    )

    def sgd(lr):
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=momentum))

    return optax.multi_transform(
        {"encoder": sgd(schedule), "predictor": sgd(learning_rate if fixed_predictor_lr else schedule)},
        parameter_groups,
    )


def parameter_groups(params: Any) -> Any:
    """The optimiser group of every parameter: 'predictor' under the predictor, else 'encoder'."""
    return {
        name: jax.tree.map(lambda _: "predictor" if name == "predictor" else "encoder", subtree)
        for name, subtree in params.items()
    }


def init_state(
    model: SimSiam, optimizer: optax.GradientTransformation, key: jax.Array, image_size: int = 128
) -> TrainState:
    """A fresh state from `key` (split: parameters, run key): He-normal convolutions, zero momentum."""
    init_key, run_key = jax.random.split(key)
    images = jnp.zeros((2, image_size, image_size, model.input_channels), jnp.float32)
    variables = model.init(init_key, images, train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables["batch_stats"],
        opt_state=optimizer.init(params),
        rng=run_key,
    )


def update(
    model: SimSiam,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    view1: jax.Array,
    view2: jax.Array,
    *,
    compute_dtype: str = "float32",
    physics_aux_weight: float = 0.0,
    target_set: str = "sharp",
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SimSiam update on two views [B, H, W, C] of the same images.

    With ``compute_dtype='bfloat16'`` the network computes in bfloat16 (parameters and views cast
    per pass); parameters, BatchNorm statistics, optimiser state, the loss and the gradients stay
    float32 (`solarjax.models.precision`). 'float32' (default) makes no cast.

    With ``physics_aux_weight`` > 0 (a model with a physics head) the step descends the SimSiam
    loss + weight x the mean over the two views of `physics_aux_loss` on each view's own
    `physics_targets` (or the targets of ``target_set``, `target_function`); 0 (default) is the plain
    SimSiam step.

    Returns:
      (new state, metrics): 'loss' (symmetric negative cosine, in [-1, 1]), 'collapse' (of the
      l2-normalised predictions of view 1), 'grad_norm', and with a physics weight 'physics_aux'.
    """
    if physics_aux_weight > 0:
        return _update_with_physics(
            model, optimizer, state, view1, view2, compute_dtype, physics_aux_weight, target_set
        )

    dtype = precision.compute_dtype_of(compute_dtype)
    if precision.is_mixed(compute_dtype):
        narrow, widen = functools.partial(precision.cast_floating, dtype=dtype), precision.to_float32
    else:  # float32: no cast at all
        narrow = widen = lambda tree: tree

    def loss_fn(params):
        params = narrow(params)
        (z1, p1), stats = model.apply(
            {"params": params, "batch_stats": state.batch_stats}, narrow(view1), train=True, mutable=["batch_stats"]
        )
        stats = widen(stats)
        (z2, p2), stats = model.apply({"params": params, **stats}, narrow(view2), train=True, mutable=["batch_stats"])
        z1, p1, z2, p2, stats = widen((z1, p1, z2, p2, stats))
        return simsiam_loss(p1, p2, z1, z2), (stats["batch_stats"], p1)

    (loss, (batch_stats, p1)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        batch_stats=batch_stats,
        opt_state=opt_state,
    )
    metrics = {"loss": loss, "collapse": collapse_level(p1), "grad_norm": optax.tree.norm(grads)}
    return new_state, metrics


def _update_with_physics(
    model: SimSiam,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    view1: jax.Array,
    view2: jax.Array,
    compute_dtype: str,
    weight: float,
    target_set: str = "sharp",
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`update` with the physics head's loss added (weight > 0)."""
    names = target_names(target_set)
    if model.physics_head != len(names):
        raise ValueError(
            f"a physics aux weight needs a model with physics_head={len(names)} "
            f"(`with_physics_head`), got {model.physics_head}"
        )
    dtype = precision.compute_dtype_of(compute_dtype)
    if precision.is_mixed(compute_dtype):
        narrow, widen = functools.partial(precision.cast_floating, dtype=dtype), precision.to_float32
    else:
        narrow = widen = lambda tree: tree
    targets_of = target_function(target_set)
    targets1, targets2 = targets_of(view1), targets_of(view2)

    def loss_fn(params):
        params = narrow(params)
        (z1, p1, a1), stats = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            narrow(view1),
            train=True,
            mutable=["batch_stats"],
            method=SimSiam.with_physics,
        )
        stats = widen(stats)
        (z2, p2, a2), stats = model.apply(
            {"params": params, **stats}, narrow(view2), train=True, mutable=["batch_stats"], method=SimSiam.with_physics
        )
        z1, p1, a1, z2, p2, a2, stats = widen((z1, p1, a1, z2, p2, a2, stats))
        siamese = simsiam_loss(p1, p2, z1, z2)
        aux = 0.5 * (physics_aux_loss(a1, targets1) + physics_aux_loss(a2, targets2))
        return siamese + weight * aux, (stats["batch_stats"], p1, siamese, aux)

    (_, (batch_stats, p1, siamese, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        batch_stats=batch_stats,
        opt_state=opt_state,
    )
    metrics = {"loss": siamese, "collapse": collapse_level(p1), "grad_norm": optax.tree.norm(grads), "physics_aux": aux}
    return new_state, metrics


def train_step(
    model: SimSiam,
    optimizer: optax.GradientTransformation,
    recipe: augment.Recipe,
    state: TrainState,
    batch: Mapping[str, jax.Array],
    key: jax.Array,
    *,
    compute_dtype: str = "float32",
    physics_aux_weight: float = 0.0,
    target_set: str = "sharp",
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Two augmented views of batch['image'] [B, H, W, C] drawn with `key` (in float32), then `update`."""
    view1, view2 = augment.two_views(key, batch["image"], recipe)
    return update(
        model,
        optimizer,
        state,
        view1,
        view2,
        compute_dtype=compute_dtype,
        physics_aux_weight=physics_aux_weight,
        target_set=target_set,
    )


# ------------------------------------------------------------------------------------- monitors
def nearest_neighbours(vectors: np.ndarray) -> np.ndarray:
    """Index of each row's nearest other row (Euclidean). vectors: [N, D] -> int64 [N]."""
    x = jnp.asarray(vectors, jnp.float32).reshape(len(vectors), -1)
    squared = jnp.sum(x * x, axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * (x @ x.T)
    distances = jnp.where(jnp.eye(len(x), dtype=bool), jnp.inf, distances)
    return np.asarray(jnp.argmin(distances, axis=1), np.int64)


def neighbour_agreement(
    vectors: np.ndarray, quantities: Mapping[str, np.ndarray], names: tuple[str, ...] = KNN_QUANTITIES
) -> dict[str, float]:
    """Spearman correlation of each quantity between every patch and its nearest neighbour.

    Args:
      vectors: [N, D] embeddings (or flattened images, for the pixel-space baseline).
      quantities: name -> [N] values of the same patches (NaN where undefined: those pairs drop).

    Returns:
      name -> Spearman rho over the pairs where both values are finite.
    """
    neighbour = nearest_neighbours(vectors)
    return {
        name: correlations(np.asarray(quantities[name]), np.asarray(quantities[name])[neighbour])["spearman"]
        for name in names
    }


# ------------------------------------------------------------------------------------------- run
def optimizer_of(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """`make_optimizer` with a config's `optimizer` section, batch size and number of steps."""
    opt = config.optimizer
    return make_optimizer(
        paper_learning_rate(config.batch_size, opt.base_lr),
        momentum=opt.momentum,
        weight_decay=opt.weight_decay,
        cosine_decay_steps=configs.upgrade(config).total_steps if opt.cosine_decay else None,
        fixed_predictor_lr=opt.fixed_predictor_lr,
    )


def create_state(
    config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh
) -> tuple[SimSiam, optax.GradientTransformation, TrainState]:
    """The model, optimiser and fresh state (from `config.seed`, replicated over `mesh`) of a config."""
    model, optimizer = make_model(config.model), optimizer_of(config)
    init = jax.jit(
        lambda key: init_state(model, optimizer, key, config.image_size), out_shardings=sharding.replicated(mesh)
    )
    return model, optimizer, init(jax.random.key(config.seed))


def recipe_of(config: ml_collections.ConfigDict) -> augment.Recipe:
    """The augmentation recipe of a config: `config.augment` is a recipe name or its fields."""
    spec = config.augment
    return augment.get_recipe(spec if isinstance(spec, str) else spec.to_dict())


def run_config(config: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON, with the recipe resolved to its fields (stored with the run)."""
    plain = loop.config_dict(config)
    plain["augment"] = recipe_of(config).to_dict()
    return plain


def encoder_config_fingerprint(model_config: Mapping[str, Any]) -> str:
    """Fingerprint of a model config (checkpoints of another architecture are refused)."""
    if isinstance(model_config, ml_collections.ConfigDict):
        model_config = model_config.to_dict()
    return checkpoint_lib.model_fingerprint(model_config)


def make_embed_fn(model: SimSiam, mesh: jax.sharding.Mesh):
    """Jitted ``(params, batch_stats, images [N, H, W, C]) -> [N, 8 * width]`` backbone features.

    Images are split over 'data' (N a multiple of the mesh size); BatchNorm uses its running
    statistics, so each row depends on its own image only.
    """
    replicated = sharding.replicated(mesh)

    def embed(params, batch_stats, images):
        return model.apply({"params": params, "batch_stats": batch_stats}, images, method=SimSiam.embed)

    return jax.jit(embed, in_shardings=(replicated, replicated, sharding.batch_sharded(mesh)), out_shardings=replicated)


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The fixed held-out patches of the k-NN monitor.

    Attributes:
      images: [N, H, W, C] float32.
      quantities: name -> [N] value of each monitored quantity of each patch (NaN: undefined).
      pixel_agreement: `neighbour_agreement` of nearest neighbours in pixel space (the baseline).
    """

    images: np.ndarray
    quantities: dict[str, np.ndarray]
    pixel_agreement: dict[str, float]

    @classmethod
    def from_images(cls, images: np.ndarray, quantities: Mapping[str, np.ndarray] | None = None) -> HeldOut:
        """Held-out patches [N, H, W, C] and their quantities (default: Br physics TUF, PSEP, R)."""
        images = np.asarray(images, np.float32)
        if quantities is None:
            computed = physics.quantities(images)
            quantities = {name: computed[name] for name in KNN_QUANTITIES}
        quantities = {name: np.asarray(values) for name, values in quantities.items()}
        pixel = neighbour_agreement(images.reshape(len(images), -1), quantities, tuple(quantities))
        return cls(images, quantities, pixel)


def aia_quantities(images: np.ndarray, wavelengths: tuple[int, ...], mu: np.ndarray) -> dict[str, np.ndarray]:
    """The k-NN monitor's quantities of AIA patches.

    Args:
      images: [N, H, W, C] normalised intensities, channel c of wavelength ``wavelengths[c]``.
      wavelengths: C wavelengths in Angstrom.
      mu: [N] cosine of the heliocentric angle at each patch centre (NaN off-disk).

    Returns:
      'intensity_<wavelength>' -> [N] mean normalised intensity of the channel, and 'mu' -> [N].
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != len(wavelengths):
        raise ValueError(f"images of shape {images.shape} do not hold the {len(wavelengths)} channels {wavelengths}")
    means = images.mean(axis=(1, 2), dtype=np.float64)
    return {**{f"intensity_{w}": means[:, c] for c, w in enumerate(wavelengths)}, "mu": np.asarray(mu, np.float64)}


def dataset_of(config: ml_collections.ConfigDict) -> str:
    """The TFDS dataset a config trains on: ``config.data.dataset``, 'sharp_patches' by default."""
    return config.data.get("dataset", SHARP_DATASET)


def load_heldout(config: ml_collections.ConfigDict) -> HeldOut:
    """The first `config.knn.num_patches` patches of the held-out split (same on every process).

    Raises:
      ValueError: an `aia_patches` split whose channels differ from the recipe's wavelengths.
    """
    from solarjax.data import pipeline

    dataset = dataset_of(config)
    keys = ("image", "wavelengths", "mu") if dataset == AIA_DATASET else ("image",)
    iterator = pipeline.make_iterator(
        config.data.heldout_split,
        batch_size=config.knn.num_patches,
        seed=config.seed,
        data_dir=os.path.expanduser(config.data.data_dir),
        config=config.data.builder_config,
        dataset=dataset,
        keys=keys,
        num_epochs=1,
        shuffle=False,
        drop_remainder=False,
        process_index=0,
        process_count=1,
    )
    batch = next(iterator)
    if dataset != AIA_DATASET:
        return HeldOut.from_images(batch["image"])
    wavelengths = recipe_of(config).wavelengths
    stored = tuple(int(w) for w in np.asarray(batch["wavelengths"])[0])
    if stored != tuple(wavelengths):
        raise ValueError(
            f"{dataset}/{config.data.builder_config} holds channels {stored}, but the augmentation "
            f"recipe normalises channels {tuple(wavelengths)}: set Recipe.wavelengths to match"
        )
    return HeldOut.from_images(batch["image"], aia_quantities(batch["image"], stored, batch["mu"]))


def knn_figures(embed, state: TrainState, heldout: HeldOut, mesh: jax.sharding.Mesh) -> dict[str, float]:
    """k-NN monitor: Spearman of each held-out quantity (TUF, PSEP, R for Br) between each held-out
    patch and its nearest neighbour.

    Keys 'knn/ssl_<q>' (backbone features), 'knn/pixel_<q>' (pixel space), and their means over
    the quantities 'knn/ssl_mean', 'knn/pixel_mean'.
    """
    count = len(heldout.images)
    padded = np.pad(heldout.images, [(0, -count % mesh.size)] + [(0, 0)] * (heldout.images.ndim - 1))
    images = jax.make_array_from_callback(padded.shape, sharding.batch_sharded(mesh), lambda index: padded[index])
    features = np.asarray(embed(state.params, state.batch_stats, images))[:count]  # padding rows: dropped
    figures = {}
    names = tuple(heldout.quantities)
    for space, agreement in (
        ("ssl", neighbour_agreement(features, heldout.quantities, names)),
        ("pixel", heldout.pixel_agreement),
    ):
        figures.update({f"knn/{space}_{q}": v for q, v in agreement.items()})
        figures[f"knn/{space}_mean"] = float(np.nanmean(list(agreement.values())))
    return figures


def task_for(config: ml_collections.ConfigDict, heldout: HeldOut | None = None) -> loop.Task:
    """SimSiam as a `loop.Task`; `config` as `train_and_evaluate` resolves it (`with_physics_head`). The
    evaluation is the k-NN monitor (`knn_figures`) on `heldout` (default `load_heldout(config)`, read
    when the task is built); 'knn/ssl_mean' ranks checkpoints."""
    plain_config = run_config(config)

    def build(mesh: jax.sharding.Mesh) -> loop.Programs:
        model, optimizer, state = create_state(config, mesh)
        step_fn = loop.jit_train_step(
            functools.partial(
                train_step,
                model,
                optimizer,
                recipe_of(config),
                compute_dtype=config.get("compute_dtype", "float32"),
                physics_aux_weight=physics_aux_weight_of(config),
                target_set=target_set_of(config),
            ),
            mesh,
        )
        evaluate = None
        if config.eval_every > 0:
            monitored = heldout or load_heldout(config)
            embed = make_embed_fn(model, mesh)

            def evaluate(state: TrainState) -> dict[str, float]:
                return knn_figures(embed, state, monitored, mesh)

        return loop.Programs(init=lambda: state, train_step=step_fn, evaluate=evaluate)

    return loop.Task(
        name="simsiam",
        fingerprint=encoder_config_fingerprint(config.model),
        run_config=plain_config,
        image_shape=(config.image_size, config.image_size, config.model.input_channels),
        build=build,
        best_metric=BEST_METRIC,
        best_mode="max",
        progress_fields={"loss": ".3f", "collapse": ".2f"},
        time_first_step=True,
    )


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    data_iterator_factory: loop.DataIteratorFactory | None = None,
    heldout: HeldOut | None = None,
) -> TrainState:
    """Trains (or resumes) the SimSiam encoder of `config` in `workdir` up to `config.total_steps` (`loop.run`;
    a config saved with the old name ``num_steps`` is read through `solarjax.configs.upgrade`).

    Work directory: ``config.json`` (the recipe resolved), ``metrics.jsonl`` (loss, collapse,
    grad_norm, images_per_second every `log_every` steps; the k-NN figures every `eval_every`),
    ``checkpoints/`` (last `keep_checkpoints` and the best by 'knn/ssl_mean').

    Args:
      config: see `solarjax.configs.simsiam` for the fields.
      workdir: run directory; a run found there is resumed (same parameters as an uninterrupted run).
      data_iterator_factory: ``() -> iterator`` of process-local batches ``{'image': [B_local, H, W,
        C]}`` with get_state/set_state; default: the pipeline of config.data (`sharp_patches`, or
        ``config.data.dataset``).
      heldout: the k-NN monitor's patches; default: `load_heldout(config)` when eval_every > 0.

    Returns:
      The final train state.

    Raises:
      FingerprintMismatchError: `workdir` holds checkpoints of another model config.
      NonFiniteError: a metric became NaN/Inf (the last good checkpoint is kept).
    """
    config = with_physics_head(configs.upgrade(config))
    factory = data_iterator_factory or loop.pipeline_iterator_factory(config)
    return loop.run(task_for(config, heldout), config, workdir, factory)
