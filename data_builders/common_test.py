"""Tests of the builder skeleton shared by sharp_patches and aia_patches (no dataset is built here)."""

import datetime
import json

import pytest
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.aia_patches import aia_patches_dataset_builder, day_split
from data_builders.sharp_patches import harp_split, sharp_patches_dataset_builder

# Split membership pinned from the builders before they shared `common` (every HARP 1..200 and every
# day of 2012-03-01..2012-04-30 not listed here is in train).
VALIDATION_HARPS = [
    2,
    16,
    18,
    24,
    43,
    44,
    49,
    59,
    62,
    65,
    78,
    83,
    84,
    105,
    108,
    109,
    114,
    115,
    120,
    136,
    140,
    155,
    166,
    173,
    179,
    180,
]
TEST_HARPS = [19, 35, 61, 67, 69, 97, 106, 146, 160, 174, 185, 200]
VALIDATION_DAYS = [
    "2012-03-07",
    "2012-03-17",
    "2012-03-21",
    "2012-03-25",
    "2012-04-01",
    "2012-04-06",
    "2012-04-18",
    "2012-04-23",
]
TEST_DAYS = ["2012-03-04", "2012-04-11"]


def test_harp_and_day_splits_are_pinned():
    expected = {
        h: "validation" if h in VALIDATION_HARPS else "test" if h in TEST_HARPS else "train" for h in range(1, 201)
    }
    assert {h: harp_split(h) for h in range(1, 201)} == expected
    days = [(datetime.date(2012, 3, 1) + datetime.timedelta(days=d)).isoformat() for d in range(61)]
    expected = {d: "validation" if d in VALIDATION_DAYS else "test" if d in TEST_DAYS else "train" for d in days}
    assert {d: day_split(d) for d in days} == expected
    assert harp_split(19) == common.hash_split("HARP19") == "test"
    assert day_split("2012-03-04") == common.hash_split("AIA2012-03-04") == "test"


@pytest.mark.parametrize(
    "n, sizes", [(1, [1, 0, 0]), (9, [9, 0, 0]), (10, [8, 1, 1]), (20_000, [16_000, 2_000, 2_000])]
)
def test_synthetic_split_ranges_partition_the_indices(n, sizes):
    ranges = common.synthetic_split_ranges(n)
    assert [len(ranges.get(s, range(0))) for s in ("train", "validation", "test")] == sizes
    assert [i for r in ranges.values() for i in r] == list(range(n))


def test_group_by_split_orders_splits_and_keeps_item_order():
    items = [("a", "test"), ("b", "train"), ("c", "test"), ("d", "train")]
    groups = common.group_by_split(items, lambda item: item[1])
    assert list(groups) == ["train", "test"]  # SPLIT_FRACTIONS order; validation has no item
    assert groups == {"train": [("b", "train"), ("d", "train")], "test": [("a", "test"), ("c", "test")]}


@pytest.mark.parametrize(
    "module, own_key, initial",
    [
        (sharp_patches_dataset_builder, "unused_segments", {}),
        (aia_patches_dataset_builder, "degradation", {"applied": False, "table": None}),
    ],
)
def test_build_log_json_round_trip(tmp_path, module, own_key, initial):
    log = module.BuildLog()
    assert list(log) == ["failures", "ignored", own_key] and log[own_key] == initial
    log["failures"].append({"path": "/x/a.fits", "reason": "empty file: 0 bytes"})
    log.save_metadata(tmp_path)
    text = (tmp_path / common.BUILD_LOG_NAME).read_text()
    assert text == json.dumps(
        {"failures": [{"path": "/x/a.fits", "reason": "empty file: 0 bytes"}], "ignored": [], own_key: initial},
        indent=1,
    )
    loaded = module.BuildLog()
    loaded.load_metadata(tmp_path)
    assert dict(loaded) == dict(log)
    assert module.BuildLog()["failures"] == []  # a fresh log shares no list with an earlier one


def test_only_the_two_builders_are_registered():
    assert tfds.builder_cls("sharp_patches") is sharp_patches_dataset_builder.Builder
    assert tfds.builder_cls("aia_patches") is aia_patches_dataset_builder.Builder
    assert not any("patches_builder" in name for name in tfds.list_builders(with_community_datasets=False))
