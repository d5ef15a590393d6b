"""One base config per model with variants (`solarjax.configs.gan`, `solarjax.configs.simsiam`), the old names
as aliases, one step-count name (``total_steps``) with old saved configs upgraded, demo fingerprints kept."""

import json
import pathlib

import ml_collections
import pytest

from solarjax import configs, demo
from solarjax.configs import gan as gan_configs
from solarjax.configs import simsiam as simsiam_configs
from solarjax.fingerprint import config_fingerprint
from solarjax.train import simsiam as simsiam_train

# config_fingerprint of each config's to_dict() as it was when every variant was a module of its own (before
# the variants and the rename num_steps -> total_steps): the variants must reproduce them exactly.
FINGERPRINTS_BEFORE = {
    "gan_paper": "342f0ccb3cf066e1",
    "gan_sharp_full": "783467d1c79030c8",
    "gan_synthetic": "c8f17f81fcabeaaf",
    "simsiam_aia_synthetic": "8a38006bc5e5ffff",
    "simsiam_cme_synthetic": "71917602fa8b1124",
    "simsiam_sharp_full": "4812f2473cf6dcef",
    "simsiam_synthetic": "a71fc59d6fc3e885",
}
# Fields the variants gained: explicit defaults that behave as their absence did.
ADDED_FIELDS = {
    "simsiam_aia_synthetic": {"physics_aux_weight": 0.0},
    "simsiam_sharp_full": {"physics_aux_weight": 0.0},
    "simsiam_cme_synthetic": {"physics_aux_weight": 0.0, "compute_dtype": "float32"},
}


# Models the variants changed on purpose (issue 23's default generator): the model now, and the model before.
CHANGED_MODELS = {"gan_synthetic": (gan_configs.DEFAULT_MODEL, gan_configs.PLAIN_MODEL)}


def _as_before(name: str, config: ml_collections.ConfigDict) -> dict:
    view = json.loads(config.to_json())
    for field, default in ADDED_FIELDS.get(name, {}).items():
        assert view.pop(field) == default
    if name in CHANGED_MODELS:
        now, before = CHANGED_MODELS[name]
        assert view["model"] == now
        view["model"] = before
    if name.startswith("simsiam"):
        view["num_steps"] = view.pop("total_steps")
    return view


@pytest.mark.parametrize("name", sorted(FINGERPRINTS_BEFORE))
def test_variants_reproduce_the_configs_of_before_exactly(name):
    model, variant = configs.ALIASES[name]
    for config in (configs.load(name), configs.load(f"{model}:{variant}")):
        assert config_fingerprint(_as_before(name, config)) == FINGERPRINTS_BEFORE[name]
        assert "total_steps" in config and "num_steps" not in config


def test_every_variant_has_the_same_fields_as_its_base():
    for module in (gan_configs, simsiam_configs):
        base = set(module.get_config().keys())
        for variant in module.VARIANTS:
            assert set(module.get_config(variant).keys()) == base, variant


def test_bare_model_name_is_the_default_variant_and_unknown_variants_are_refused():
    assert configs.load("gan").to_dict() == configs.load("gan_synthetic").to_dict()
    assert configs.load("simsiam").to_dict() == configs.load("simsiam:synthetic").to_dict()
    with pytest.raises(
        configs.ConfigError, match="gan has no variant 'huge' \\(synthetic, paper, sharp_full, cme_synthetic\\)"
    ):
        configs.load("gan:huge")
    with pytest.raises(configs.ConfigError, match="gan:VARIANT, simsiam:VARIANT"):
        configs.load("ganx")


def test_non_default_simsiam_variants_train_without_the_physics_head():
    weights = {v: simsiam_train.physics_aux_weight_of(simsiam_configs.get_config(v)) for v in simsiam_configs.VARIANTS}
    assert weights == {"synthetic": 1.0, "aia_synthetic": 0.0, "sharp_full": 0.0, "cme_synthetic": 0.0}


def test_old_step_name_is_upgraded_from_saved_configs_and_overrides():
    saved = {"seed": 1, "num_steps": 40, "optimizer": {"base_lr": 0.1}}
    upgraded = configs.upgrade(saved)
    assert upgraded.total_steps == 40 and "num_steps" not in upgraded and saved["num_steps"] == 40
    current = configs.load("simsiam_synthetic")
    assert configs.upgrade(current) is current  # nothing to rename: the same object
    assert configs.load("simsiam", ["num_steps=7"]).total_steps == 7
    clash = configs.load("simsiam", lock=False)
    clash.num_steps = 4  # a script written for the old name, on a config that has total_steps = 500
    with pytest.raises(configs.ConfigError, match="both num_steps = 4 and total_steps = 500"):
        configs.upgrade(clash)


def test_simsiam_optimizer_reads_a_config_saved_with_the_old_step_name():
    import jax.numpy as jnp

    overrides = ["optimizer.cosine_decay=true", "total_steps=10"]
    saved = json.loads(configs.load("simsiam", overrides).to_json())
    saved["num_steps"] = saved.pop("total_steps")
    optimizers = {
        "saved": simsiam_train.optimizer_of(ml_collections.ConfigDict(saved)),
        "today": simsiam_train.optimizer_of(configs.load("simsiam", overrides)),
        "500 steps": simsiam_train.optimizer_of(configs.load("simsiam", overrides[:1])),
    }
    params, grads = {"w": jnp.ones(3)}, {"w": jnp.full(3, 0.5)}
    states = {k: opt.init(params) for k, opt in optimizers.items()}
    for _ in range(9):  # along the cosine schedule: the saved config decays over its own 10 steps
        updates = {}
        for k, opt in optimizers.items():
            updates[k], states[k] = opt.update(grads, states[k], params)
    assert jnp.allclose(updates["saved"]["w"], updates["today"]["w"])
    assert not jnp.allclose(updates["saved"]["w"], updates["500 steps"]["w"], rtol=0.1)


def test_demo_trainer_stages_keep_their_fingerprints(tmp_path):
    # The quick demo's trainer stage configs as recorded in stage.json before the step name was unified.
    before = {"gan": "92905c55808b40a3", "simsiam": "a579ba6fb91428b0"}
    tfds_dir = pathlib.Path(tmp_path / "tfds")
    gan_view = demo._trainer_fingerprint_view(demo._gan_config(tfds_dir, demo.QUICK))
    assert gan_view["model"] == gan_configs.DEFAULT_MODEL  # issue 23 changed the model, and only the model
    gan_view["model"] = gan_configs.PLAIN_MODEL
    simsiam_view = demo._trainer_fingerprint_view(
        demo._simsiam_config(tfds_dir, demo.QUICK), step_count_name="num_steps"
    )
    assert config_fingerprint(gan_view) == before["gan"]
    assert config_fingerprint(simsiam_view) == before["simsiam"]
