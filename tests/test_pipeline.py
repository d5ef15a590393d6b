"""Tests of solarjax.data.pipeline on a small synthetic sharp_patches build (4 forced CPU devices)."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_builders.sharp_patches import build
from solarjax.data.pipeline import load_split, make_iterator, to_global_batch

NUM_EXAMPLES = 80  # train 64, validation 8, test 8
TRAIN = 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tfds")
    build("synthetic", directory, num_examples=NUM_EXAMPLES)
    return directory


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _indices(records):
    """Synthetic example indices from record names 'synthetic[<seed>][<index>]'."""
    return [int(r.decode().rsplit("[", 1)[1].rstrip("]")) for r in records]


def test_load_split_reads_the_built_dataset(data_dir):
    source = load_split("train", data_dir=data_dir)
    assert len(source) == TRAIN
    assert sorted(_indices([source[i]["record"] for i in range(TRAIN)])) == list(range(TRAIN))


def test_batches_have_the_documented_shapes(data_dir):
    batch = next(make_iterator("train", batch_size=8, seed=0, data_dir=data_dir, keys=("image", "tuf", "harpnum")))
    assert set(batch) == {"image", "tuf", "harpnum"}
    assert batch["image"].shape == (8, 128, 128, 1) and batch["image"].dtype == np.float32
    assert batch["tuf"].shape == (8,) and batch["tuf"].dtype == np.float32
    assert (batch["harpnum"] >= 1).all()  # synthetic regions are numbered from 1, like HARPs
    assert np.abs(batch["image"]).max() <= 1.0


def test_one_epoch_visits_every_example_once_in_a_seeded_order(data_dir):
    def epoch(seed, shuffle=True):
        iterator = make_iterator(
            "train", batch_size=16, seed=seed, data_dir=data_dir, num_epochs=1, shuffle=shuffle, keys=("record",)
        )
        return _indices(np.concatenate([b["record"] for b in iterator]))

    first = epoch(seed=1)
    assert sorted(first) == list(range(TRAIN))
    assert epoch(seed=1) == first
    assert epoch(seed=2) != first
    unshuffled = epoch(seed=1, shuffle=False)
    source = load_split("train", data_dir=data_dir)
    assert unshuffled == _indices([source[i]["record"] for i in range(TRAIN)])


def test_epochs_are_reshuffled_and_complete(data_dir):
    iterator = make_iterator("train", batch_size=16, seed=3, data_dir=data_dir, num_epochs=2, keys=("record",))
    records = _indices(np.concatenate([b["record"] for b in iterator]))
    first, second = records[:TRAIN], records[TRAIN:]
    assert sorted(first) == sorted(second) == list(range(TRAIN))
    assert first != second


def test_drop_remainder(data_dir):
    def sizes(drop):
        iterator = make_iterator(
            "train", batch_size=24, seed=0, data_dir=data_dir, num_epochs=1, drop_remainder=drop, keys=("record",)
        )
        return [len(b["record"]) for b in iterator]

    assert sizes(True) == [24, 24]
    assert sizes(False) == [24, 24, 16]


def test_resume_from_state_gives_the_same_next_batches(data_dir):
    # batch 16 of 64 examples: 4 batches per epoch, so the batches after the state cross an epoch.
    iterator = make_iterator("train", batch_size=16, seed=5, data_dir=data_dir, keys=("image", "record"))
    _take(iterator, 3)
    state = iterator.get_state()
    expected = _take(iterator, 3)

    resumed = make_iterator("train", batch_size=16, seed=5, data_dir=data_dir, keys=("image", "record"))
    resumed.set_state(state)
    for want, got in zip(expected, _take(resumed, 3)):
        np.testing.assert_array_equal(got["record"], want["record"])
        np.testing.assert_array_equal(got["image"], want["image"])


def test_augmentation_is_applied_per_batch_and_replayed_on_resume(data_dir):
    def flip_some(batch, rng):
        signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(batch["image"]), 1, 1, 1))
        return {**batch, "image": batch["image"] * signs}

    plain = _take(make_iterator("train", batch_size=16, seed=7, data_dir=data_dir), 4)
    augmented_iterator = make_iterator("train", batch_size=16, seed=7, data_dir=data_dir, augment=flip_some)
    augmented = _take(augmented_iterator, 2)
    state = augmented_iterator.get_state()
    augmented += _take(augmented_iterator, 2)

    flipped = 0
    for p, a in zip(plain, augmented):
        same = np.all(a["image"] == p["image"], axis=(1, 2, 3))
        negated = np.all(a["image"] == -p["image"], axis=(1, 2, 3))
        assert np.all(same | negated)
        flipped += int(np.sum(negated & ~same))
    assert 0 < flipped < 64

    resumed = make_iterator("train", batch_size=16, seed=7, data_dir=data_dir, augment=flip_some)
    resumed.set_state(state)
    for want, got in zip(augmented[2:], _take(resumed, 2)):
        np.testing.assert_array_equal(got["image"], want["image"])


def test_process_shards_partition_each_global_batch(data_dir):
    """Two emulated hosts with local batches of 8 together read the single-host batch of 16."""
    single = make_iterator("train", batch_size=16, seed=11, data_dir=data_dir, keys=("record",))
    hosts = [
        make_iterator(
            "train", batch_size=16, seed=11, data_dir=data_dir, keys=("record",), process_index=index, process_count=2
        )
        for index in range(2)
    ]
    for _ in range(6):
        whole = _indices(next(single)["record"])
        parts = [_indices(next(host)["record"]) for host in hosts]
        assert [len(p) for p in parts] == [8, 8]
        assert not set(parts[0]) & set(parts[1])
        assert sorted(parts[0] + parts[1]) == sorted(whole)


def test_to_global_batch_shards_rows_over_the_data_axis(data_dir):
    assert jax.device_count() == 4, "tests/conftest.py forces 4 CPU devices"
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = next(make_iterator("train", batch_size=8, seed=0, data_dir=data_dir, keys=("image", "tuf")))
    arrays = to_global_batch(batch, mesh)
    assert arrays["image"].shape == (8, 128, 128, 1)
    assert arrays["image"].sharding == NamedSharding(mesh, PartitionSpec("data"))
    np.testing.assert_array_equal(np.asarray(arrays["image"]), batch["image"])
    np.testing.assert_array_equal(np.asarray(arrays["tuf"]), batch["tuf"])
    for shard in arrays["image"].addressable_shards:
        assert shard.data.shape == (2, 128, 128, 1)
        np.testing.assert_array_equal(np.asarray(shard.data), batch["image"][shard.index[0]])
    total = jax.jit(lambda x: x.sum())(arrays["image"])
    np.testing.assert_allclose(float(total), batch["image"].astype(np.float64).sum(), rtol=1e-5)


def test_to_global_batch_rejects_uneven_batches_and_unknown_axes():
    mesh = Mesh(np.array(jax.devices()), ("data",))
    with pytest.raises(ValueError, match="does not split evenly over 4 devices"):
        to_global_batch({"image": np.zeros((6, 4), np.float32)}, mesh)
    with pytest.raises(ValueError, match="not 'batch'"):
        to_global_batch({"image": np.zeros((8, 4), np.float32)}, mesh, axis="batch")


def test_bad_requests_get_clear_errors(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="solarjax data build --config synthetic"):
        make_iterator("train", batch_size=8, seed=0, data_dir=tmp_path)
    with pytest.raises(ValueError, match="no split 'training'"):
        make_iterator("training", batch_size=8, seed=0, data_dir=data_dir)
    with pytest.raises(ValueError, match="multiple of the process count 2"):
        make_iterator("train", batch_size=7, seed=0, data_dir=data_dir, process_index=0, process_count=2)
    with pytest.raises(ValueError, match="seed"):
        make_iterator("train", batch_size=8, seed=-1, data_dir=data_dir)
    with pytest.raises(KeyError, match="'flux'"):
        make_iterator("train", batch_size=8, seed=0, data_dir=data_dir, keys=("image", "flux"))


def test_canonical_polarity_flips_negative_leaders(data_dir):
    plain = next(
        make_iterator(
            "train", batch_size=TRAIN, seed=0, data_dir=data_dir, shuffle=False, keys=("image", "lead_polarity")
        )
    )
    flipped = next(
        make_iterator(
            "train",
            batch_size=TRAIN,
            seed=0,
            data_dir=data_dir,
            shuffle=False,
            keys=("image", "lead_polarity"),
            canonical_polarity=True,
        )
    )
    negative = plain["lead_polarity"] < 0
    assert 5 < negative.sum() < TRAIN - 5  # the synthetic set leads with both signs
    sign = np.where(negative, -1.0, 1.0)[:, None, None, None]
    np.testing.assert_array_equal(flipped["image"], plain["image"] * sign)
    np.testing.assert_array_equal(flipped["lead_polarity"], np.abs(plain["lead_polarity"]))
    # The stored quantity describes the flipped image: recomputed, every leader is positive.
    from solarjax import physics

    recomputed = np.asarray(physics.quantities(flipped["image"])["lead_polarity"])
    assert np.all(recomputed[np.isfinite(recomputed)] > 0)
    only_images = next(
        make_iterator("train", batch_size=TRAIN, seed=0, data_dir=data_dir, shuffle=False, canonical_polarity=True)
    )
    assert set(only_images) == {"image"}
    np.testing.assert_array_equal(only_images["image"], flipped["image"])
