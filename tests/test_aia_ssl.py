"""Multi-wavelength SSL on AIA patches: the euv augmentations, a 3-channel SimSiam, AIA embedding
tables and indexes with time and mu filters, and `solarjax train / index build / search` end to end
on a small synthetic `aia_patches` build."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax import augment, cli
from solarjax.data import aia_prep, aia_synthetic
from solarjax.retrieval import Filters, ScannIndex, build_table_from_arrays, open_table
from solarjax.retrieval.index import ExactIndex
from solarjax.retrieval.table import AIA_CORE_COLUMNS
from solarjax.train import simsiam as simsiam_train

REPO = pathlib.Path(__file__).resolve().parents[1]
WAVELENGTHS = (171, 193, 211)


@pytest.fixture(scope="module")
def aia_images() -> np.ndarray:
    """8 synthetic AIA patches, normalised: float32 [8, 128, 128, 3]."""
    batch = aia_synthetic.generate(8, seed=5, wavelengths=WAVELENGTHS)
    return aia_prep.normalise_channels(batch.images, WAVELENGTHS)


def _constant_image(rates_dn_s) -> jnp.ndarray:
    """A 128 x 128 patch of constant DN/s per channel, normalised: [128, 128, 3]."""
    physical = np.broadcast_to(np.asarray(rates_dn_s, np.float64), (128, 128, 3))
    return jnp.asarray(aia_prep.normalise_channels(physical, WAVELENGTHS), jnp.float32)


# ------------------------------------------------------------------------------------ euv recipe
def test_unit_gain_and_zero_photon_noise_are_identities(aia_images):
    constants = augment.channel_constants(WAVELENGTHS)
    image = jnp.asarray(aia_images[0])
    noise = jax.random.normal(jax.random.key(0), image.shape)
    np.testing.assert_allclose(augment.apply_gain(image, jnp.ones(3), constants["stretch"]), image, atol=2e-6)
    np.testing.assert_allclose(
        augment.apply_photon_noise(image, 0.0, constants["softening"], constants["stretch"], noise), image, atol=2e-6
    )
    # The same through the recipe machinery: gain drawn in [1, 1], noise level in [0, 0].
    neutral = augment.Recipe(
        "neutral",
        ("gain", "photon_noise"),
        (1.0, 1.0),
        min_ops=2,
        max_ops=2,
        wavelengths=WAVELENGTHS,
        gain_range=(1.0, 1.0),
        photon_noise_range=(0.0, 0.0),
    )
    views = jax.jit(augment.augment_batch, static_argnums=2)(jax.random.key(1), jnp.asarray(aia_images[:4]), neutral)
    np.testing.assert_allclose(views, aia_images[:4], atol=2e-6)


def test_a_gain_multiplies_the_physical_intensity_exactly():
    rates = np.array([50.0, 500.0, 2000.0])  # DN/s in 171, 193, 211
    recipe = augment.Recipe("g", ("gain",), (1.0,), wavelengths=WAVELENGTHS, gain_range=(2.0, 2.0))
    params = augment.sample_params("gain", jax.random.key(2), recipe)
    np.testing.assert_allclose(params["gain"], 2.0, rtol=1e-6)
    doubled = augment.apply_augmentation("gain", _constant_image(rates), params)
    np.testing.assert_allclose(doubled, _constant_image(2 * rates), rtol=1e-5)
    np.testing.assert_allclose(
        aia_prep.denormalise_channels(np.asarray(doubled[0, 0]), WAVELENGTHS), 2 * rates, rtol=1e-4
    )
    stretch = augment.channel_constants(WAVELENGTHS)["stretch"]
    per_channel = augment.apply_gain(_constant_image(rates), jnp.array([0.5, 1.5, 3.0]), stretch)
    np.testing.assert_allclose(per_channel, _constant_image(rates * [0.5, 1.5, 3.0]), rtol=1e-5)
    saturated = jnp.ones((4, 4, 3))  # x >= x_max: stays saturated under a gain above 1
    np.testing.assert_array_equal(augment.apply_gain(saturated, jnp.full(3, 1.2), stretch), saturated)


def test_photon_noise_variance_is_proportional_to_the_signal():
    constants = augment.channel_constants(WAVELENGTHS)
    level = 0.5  # DN/s: variance 0.5 x on a signal of x DN/s
    noise = jax.random.normal(jax.random.key(3), (128, 128, 3))
    variances = {}
    for rate in (200.0, 1600.0):
        noisy = augment.apply_photon_noise(
            _constant_image([rate] * 3), level, constants["softening"], constants["stretch"], noise
        )
        physical = aia_prep.denormalise_channels(np.asarray(noisy, np.float64), WAVELENGTHS)
        variances[rate] = physical.reshape(-1, 3).var(axis=0)
        np.testing.assert_allclose(physical.reshape(-1, 3).mean(axis=0), rate, rtol=2e-3)
        np.testing.assert_allclose(variances[rate], level * rate, rtol=0.05)
    np.testing.assert_allclose(variances[1600.0] / variances[200.0], 8.0, rtol=0.05)


def test_euv_views_of_three_channel_patches(aia_images):
    recipe = augment.RECIPES["euv"]
    assert recipe.wavelengths == WAVELENGTHS and "polarity_flip" not in recipe.augmentations
    # Voids stay dark (no fill noise), so only photon noise reads a noise field: one per view.
    assert augment.noise_readers(recipe) == ("photon_noise",)
    assert augment.noise_readers(augment.RECIPES["paper"]) == ("rotation", "translation", "zoom")
    assert augment.get_recipe(json.loads(json.dumps(recipe.to_dict()))) == recipe
    view_1, view_2 = jax.jit(augment.two_views, static_argnums=2)(jax.random.key(4), jnp.asarray(aia_images), recipe)
    assert view_1.shape == view_2.shape == (8, 128, 128, 3) and view_1.dtype == jnp.float32
    assert np.all(np.isfinite(view_1)) and float(view_1.min()) >= 0.0 and float(view_1.max()) <= 1.0
    assert not np.allclose(view_1, view_2)
    with pytest.raises(ValueError, match="recipe for 3 channels"):
        augment.augment(jax.random.key(5), jnp.zeros((128, 128, 1)), recipe)
    with pytest.raises(ValueError, match="need the wavelength of each image channel"):
        augment.Recipe("x", ("gain",), (1.0,))
    with pytest.raises(ValueError, match="no AIA normalisation constants for wavelengths \\[999\\]"):
        augment.sample_params("gain", jax.random.key(6), augment.Recipe("x", ("gain",), (1.0,), wavelengths=(999,)))


# --------------------------------------------------------------------------------------- simsiam
def test_aia_monitor_quantities_are_channel_means_and_mu(aia_images):
    mu = np.linspace(0.2, 1.0, 8)
    quantities = simsiam_train.aia_quantities(aia_images, WAVELENGTHS, mu)
    assert list(quantities) == ["intensity_171", "intensity_193", "intensity_211", "mu"]
    np.testing.assert_allclose(
        quantities["intensity_193"], aia_images[..., 1].astype(np.float64).mean(axis=(1, 2)), rtol=1e-12
    )
    np.testing.assert_array_equal(quantities["mu"], mu)
    with pytest.raises(ValueError, match="do not hold the 2 channels"):
        simsiam_train.aia_quantities(aia_images, (171, 193), mu)


# -------------------------------------------------------------------------------- tables, indexes
def _aia_metadata(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """AIA-like row metadata: times over 2011-2018, mu in (0, 1] with some off-disk NaN."""
    seconds = rng.integers(0, 8 * 365 * 86_400, count)
    times = np.datetime64("2011-01-01T00:00:00") + seconds.astype("timedelta64[s]")
    mu = rng.uniform(0.0, 1.0, count)
    mu[::25] = np.nan
    return {
        "id": [f"synthetic-{i:05d}" for i in range(count)],
        "t_obs": [f"{t}Z" for t in np.datetime_as_string(times, unit="s")],
        "wavelengths": ["171,193,211"] * count,
        "bbox": [f"{r},{r + 128},0,128" for r in range(count)],
        "hpc_x": rng.uniform(-900, 900, count),
        "hpc_y": rng.uniform(-900, 900, count),
        "mu": mu,
        "source": ["synthetic"] * count,
    }


def _brute_force(embeddings, query, allowed, k):
    distances = np.linalg.norm(embeddings.astype(np.float64) - query, axis=1)
    distances[~allowed] = np.inf
    order = np.lexsort((np.arange(len(distances)), distances))
    return [int(r) for r in order[:k] if np.isfinite(distances[r])]


@pytest.mark.parametrize("kind", ["exact", "scann"])
def test_aia_table_and_index_search_with_time_and_mu_filters(tmp_path, kind):
    rng = np.random.default_rng(9)
    count = 1_200 if kind == "scann" else 300
    embeddings = rng.normal(size=(count, 16)).astype(np.float32)
    metadata = _aia_metadata(count, rng)
    table = build_table_from_arrays(tmp_path / "table", embeddings, metadata, "f" * 16, dataset_name="aia_patches")
    table = open_table(table.path)
    assert table.dataset_name == "aia_patches" and table.time_column == "t_obs"
    assert list(table.columns) == list(AIA_CORE_COLUMNS)
    index = ExactIndex(table, "l2", count) if kind == "exact" else ScannIndex.build(table, target_recall=0.95)
    index.save(tmp_path / "index")

    start, end, mu_min = "2013-01-01T00:00:00Z", "2016-06-30T23:59:59Z", 0.6
    times, mu = table.column("t_obs"), table.column("mu")
    in_time = (times >= np.datetime64("2013-01-01T00:00:00")) & (times <= np.datetime64("2016-06-30T23:59:59"))
    on_disk_centre = mu >= mu_min  # NaN (off-disk) fails
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    found = []
    for filters, allowed in (
        (Filters(t_rec_range=(start, end)), in_time),
        (Filters(mu_range=(mu_min, None)), on_disk_centre),
        (Filters(t_rec_range=(start, end), mu_range=(mu_min, 1.0)), in_time & on_disk_centre),
    ):
        assert 10 < allowed.sum() < count
        for query, hits in zip(queries, index.search(queries, k=8, filters=filters)):
            assert len(hits) == 8
            assert all(allowed[h.row] for h in hits)
            truth = _brute_force(embeddings, query, allowed, 8)
            if kind == "exact":
                assert [h.row for h in hits] == truth
            found.append(len({h.row for h in hits} & set(truth)) / 8)
    assert np.mean(found) >= 0.9  # ScaNN: approximate, calibrated to recall@10 >= 0.95 unfiltered
    hit = index.search(queries[:1], k=1)[0][0]
    assert hit.metadata["wavelengths"] == "171,193,211" and hit.metadata["id"] == f"synthetic-{hit.row:05d}"
    with pytest.raises(KeyError, match="no column 'lat_deg'"):
        index.search(queries[:1], k=1, filters=Filters(hemisphere="north"))


def test_a_sharp_table_refuses_a_mu_filter(tmp_path):
    table = build_table_from_arrays(tmp_path / "t", np.eye(4, dtype=np.float32), {"harpnum": [1, 2, 3, 4]}, "f" * 16)
    assert table.dataset_name == "sharp_patches" and table.time_column == "t_rec"
    with pytest.raises(KeyError, match="no column 'mu'"):
        ExactIndex(table, "l2", 4).search(np.eye(4)[:1], k=1, filters=Filters(mu_range=(0.5, None)))


# ----------------------------------------------------------------------- train, index, search CLI
TINY_CONFIG = """
import dataclasses

from solarjax import augment
from solarjax.train.loop import load_config_file


def get_config():
    config = load_config_file({path!r})
    config.model.width = 4
    config.model.projector_dims = (16, 16, 8)
    config.model.predictor_hidden = 32
    config.batch_size = 32  # the whole train split: every step sees the same batch
    config.optimizer.base_lr = 0.2
    # The euv recipe with every augmentation switched off: traced in the train step, never applied,
    # so both views are the batch itself and the loss is measured on a fixed batch.
    euv = augment.RECIPES["euv"]
    del config.augment  # a recipe name in the config; its fields here
    config.augment = dataclasses.replace(euv, name="euv_off", probabilities=(0.0,) * len(euv.augmentations)).to_dict()
    config.total_steps = 4
    config.log_every = 1
    config.eval_every = 4
    config.checkpoint_every = 4
    config.knn.num_patches = 4
    return config
"""


@pytest.fixture(scope="module")
def aia_run(tmp_path_factory):
    """A tiny aia_patches/synthetic build (32 / 4 / 4 patches), a 4-step 3-channel SimSiam run on it
    (`solarjax train simsiam`) and its index (`solarjax index build --dataset aia_patches`)."""
    from data_builders.aia_patches import build

    root = tmp_path_factory.mktemp("aia_ssl")
    data_dir = root / "tfds"
    info = build("synthetic", data_dir, num_examples=40)
    config_file = root / "tiny_config.py"
    config_file.write_text(TINY_CONFIG.format(path=str(REPO / "experiments/configs/simsiam_aia_synthetic.py")))
    run = root / "run"
    assert (
        cli.main(["train", "simsiam", "--config", str(config_file), "--workdir", str(run), "--data-dir", str(data_dir)])
        == 0
    )
    out = root / "index"
    assert (
        cli.main(
            [
                "index",
                "build",
                "--dataset",
                "aia_patches",
                "--ssl",
                str(run),
                "--data-dir",
                str(data_dir),
                "--split",
                "train",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return {"data_dir": data_dir, "run": run, "out": out, "info": info}


def test_cli_trains_a_three_channel_simsiam_whose_loss_falls_on_a_fixed_batch(aia_run):
    records = [json.loads(line) for line in (aia_run["run"] / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 4 and all(np.isfinite(losses)) and all(-1.0 <= v <= 1.0 for v in losses)
    assert losses[-1] < losses[0] - 0.05, losses
    [knn] = [r for r in records if "knn/ssl_mean" in r]
    assert {"knn/ssl_intensity_171", "knn/ssl_intensity_211", "knn/ssl_mu", "knn/pixel_mu"} <= set(knn)
    config = json.loads((aia_run["run"] / "config.json").read_text())
    assert config["model"]["input_channels"] == 3 and config["augment"]["wavelengths"] == list(WAVELENGTHS)
    assert config["data"]["dataset"] == "aia_patches"


def test_cli_index_holds_the_aia_metadata_of_the_split(aia_run):
    import tensorflow_datasets as tfds

    table = open_table(aia_run["out"] / "table")
    source = tfds.data_source("aia_patches/synthetic", split="train", data_dir=aia_run["data_dir"])
    assert table.dataset_name == "aia_patches" and table.num_rows == len(source)
    assert list(table.columns) == list(AIA_CORE_COLUMNS)
    for row in (0, len(source) - 1):
        stored, example = table.rows([row])[0], source[row]
        assert stored["id"] == example["id"].decode() and stored["dataset"] == "aia_patches/synthetic:train"
        assert stored["wavelengths"] == "171,193,211" == ",".join(map(str, example["wavelengths"]))
        assert stored["bbox"] == ",".join(map(str, example["bbox"]))
        assert stored["t_obs"] == example["t_obs"].decode().rstrip("Z")[:19]
        np.testing.assert_allclose([stored["mu"], stored["hpc_x"]], [example["mu"], example["hpc_x"]], rtol=1e-6)


def test_cli_search_on_the_aia_index_filters_by_time_and_mu(aia_run, tmp_path, capsys):
    import tensorflow_datasets as tfds

    test_split = tfds.data_source("aia_patches/synthetic", split="test", data_dir=aia_run["data_dir"])
    queries = tmp_path / "queries.npy"
    np.save(queries, np.stack([test_split[i]["image"] for i in range(2)]))
    table = open_table(aia_run["out"] / "table")
    times, mu = table.column("t_obs"), table.column("mu")
    start, end = np.sort(times)[[3, -4]]  # drops the 3 earliest and 3 latest rows
    mu_min = float(np.nanmedian(mu))
    args = [
        "search",
        str(queries),
        "--index",
        str(aia_run["out"]),
        "--ssl",
        str(aia_run["run"]),
        "-k",
        "5",
        "--start",
        str(start),
        "--end",
        str(end),
        "--mu-min",
        str(mu_min),
    ]
    capsys.readouterr()
    assert cli.main([*args, "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    allowed = (times >= start) & (times <= end) & (mu >= mu_min)
    assert [a["query"] for a in answers] == [f"{queries}[0]", f"{queries}[1]"]
    for answer in answers:
        rows = [r["row"] for r in answer["results"]]
        assert len(rows) == min(5, int(allowed.sum())) and all(allowed[rows])
        assert all(
            r["metadata"]["mu"] >= mu_min and str(start) <= r["metadata"]["t_obs"] <= str(end)
            for r in answer["results"]
        )
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    first = answers[0]["results"][0]["metadata"]
    assert f"query {queries}[0]" in printed and first["id"] in printed and first["t_obs"] in printed
    assert "171,193,211 A" in printed and f"mu {first['mu']:.3f}" in printed
    assert (
        cli.main(
            ["search", str(queries.with_suffix(".fits")), "--index", str(aia_run["out"]), "--ssl", str(aia_run["run"])]
        )
        == 2
    )
    assert "takes .npy arrays" in capsys.readouterr().err
    np.save(one_channel := tmp_path / "one_channel.npy", np.zeros((2, 128, 128, 1), np.float32))
    assert cli.main(["search", str(one_channel), "--index", str(aia_run["out"]), "--ssl", str(aia_run["run"])]) == 2
    assert "expected [N, 128, 128, 3] in the index's channel order (171,193,211 Angstrom)" in capsys.readouterr().err


def test_aia_figures_show_each_query_with_its_top_matches(aia_run, tmp_path):
    from experiments import aia_search

    summary = aia_search.main(
        [
            "--data-dir",
            str(aia_run["data_dir"]),
            "--ssl",
            str(aia_run["run"]),
            "--index",
            str(aia_run["out"]),
            "--out",
            str(tmp_path),
            "--num-patches",
            "3",
            "--num-queries",
            "2",
        ]
    )
    assert (tmp_path / "gallery.png").stat().st_size > 0 and (tmp_path / "search.png").stat().st_size > 0
    assert summary["wavelengths"] == list(WAVELENGTHS) and len(summary["searches"]) == 2
    for search in summary["searches"]:
        similarities = [m["similarity"] for m in search["matches"]]
        assert len(similarities) == aia_search.NUM_MATCHES and similarities == sorted(similarities, reverse=True)
        assert all(0.0 <= m["mu"] <= 1.0 for m in search["matches"])
