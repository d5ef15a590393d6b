"""Tests of the cme_patches builder: pytest into tmp_path, no TensorFlow (DatasetBuilderTestCase needs it).

Real data: sunpy's LASCO C3 Helioviewer JPEG2000 image (2013-05-13) and LASCO C2 level-1 FITS frames
written with sunpy's real C2 header around an analytic corona with a front at a known position angle and
height (`tests/lasco_replay.write_sequence`).
"""

import datetime
import pathlib

import numpy as np
import pytest
import sunpy.data.test
import tensorflow_datasets as tfds

from data_builders.cme_patches import CmePatchesConfig, build, group_into_sequences, sequence_split
from data_builders.cme_patches.cme_patches_dataset_builder import _Frame
from solarjax import cme_physics
from solarjax.data import cme_prep, cme_synthetic, lasco
from tests.lasco_replay import FRONT_PA_DEG, write_sequence

JP2 = pathlib.Path(sunpy.data.test.get_test_filepath("2013_05_13__16_54_06_137__SOHO_LASCO_C3_white-light.jp2"))


def _examples(data_dir, name):
    sources = tfds.data_source(f"cme_patches/{name}", data_dir=data_dir)
    return {split: [source[i] for i in range(len(source))] for split, source in sources.items()}


def test_synthetic_build_splits_by_event_and_round_trips(tmp_path):
    info = build("synthetic", tmp_path, num_examples=20)
    assert {name: s.num_examples for name, s in info.splits.items()} == {"train": 16, "validation": 2, "test": 2}
    generated = cme_synthetic.generate(20, 23)
    measured = {k: np.asarray(v) for k, v in cme_physics.quantities(generated.images).items()}
    polar = cme_prep.grid_polar(generated.images)
    examples = _examples(tmp_path, "synthetic")
    for split, indices in {"train": range(0, 16), "validation": range(16, 18), "test": range(18, 20)}.items():
        by_id = {e["id"].decode(): e for e in examples[split]}
        assert sorted(by_id) == sorted(f"cme_synthetic[23][{i}]" for i in indices)
        for i in indices:
            example = by_id[f"cme_synthetic[23][{i}]"]
            np.testing.assert_array_equal(example["image"][..., 0], generated.images[i])
            np.testing.assert_array_equal(example["polar"], polar[i])
            assert example["event"] == example["id"] and example["detector"] == b"C2"
            assert example["rsun_per_pixel"] == np.float32(6.0 / 64)
            for name in cme_physics.QUANTITY_NAMES:
                assert example[f"true_{name}"] == getattr(generated, name)[i]
                np.testing.assert_allclose(example[name], measured[name][i], rtol=1e-6)
            assert example["true_rare"] == int(generated.rare[i])
            if not generated.rare[i]:
                assert abs(cme_physics.angle_difference_deg(example["cpa_deg"], example["true_cpa_deg"])) < 2.0


def test_files_build_of_c2_sequences_and_the_real_c3_image(tmp_path):
    manual = tmp_path / "manual"
    first = write_sequence(manual / "a", (None, 3.0, 4.0))
    second = write_sequence(manual / "b", (None, 5.0), date="2009-03-02")
    lone = write_sequence(manual / "c", (3.0,), date="2009-03-05")
    (manual / "notes.txt").write_text("not LASCO")
    (manual / "c3.jp2").symlink_to(JP2)
    broken = manual / "broken.fts"
    broken.write_bytes(b"SIMPLE  =" + b" " * 100)
    info = build("files", tmp_path / "tfds", manual_dir=manual)

    assert info.metadata["sequences"] == 2
    assert [pathlib.Path(f["path"]).name for f in info.metadata["failures"]] == ["broken.fts"]
    ignored = {pathlib.Path(f["path"]).name: f["reason"] for f in info.metadata["ignored"]}
    assert ignored["notes.txt"] == "not a LASCO file name (*.fts/*.fits/*.fit/*.jp2)"
    assert ignored["c3.jp2"] == "detector C3: this config reads C2"
    assert ignored[lone[0].name].startswith("lone frame at 2009-03-05T00:05:33.380000+00:00")
    examples = [e for split in _examples(tmp_path / "tfds", "files").values() for e in split]
    for split, split_examples in _examples(tmp_path / "tfds", "files").items():
        for e in split_examples:
            event_start = datetime.datetime.fromisoformat(e["event"].decode()[len("lasco[C2][") : -1])
            assert sequence_split("C2", event_start) == split
    by_source = {e["source"].decode(): e for e in examples}
    assert sorted(by_source) == sorted(
        f"{a.name};{b.name}" for a, b in ((first[0], first[1]), (first[1], first[2]), (second[0], second[1]))
    )
    expected_heights = {first[1].name: 3.0, first[2].name: 4.0, second[1].name: 5.0}
    for source, example in by_source.items():
        assert example["kind"] == b"running" and example["detector"] == b"C2"
        assert example["front_height_rsun"] == pytest.approx(expected_heights[source.split(";")[1]], abs=0.15)
        assert abs(cme_physics.angle_difference_deg(example["cpa_deg"], FRONT_PA_DEG)) < 3.0
        assert np.isnan(example["true_cpa_deg"]) and example["true_rare"] == -1
    # The stored image is the processing of the two frames, read back unchanged.
    images = [lasco.read_lasco(path) for path in first]
    patches = cme_prep.sequence_patches(images, "running")
    np.testing.assert_array_equal(by_source[patches[1].source]["image"][..., 0], patches[1].image)
    np.testing.assert_array_equal(by_source[patches[1].source]["polar"], patches[1].polar)
    assert by_source[patches[1].source]["t_obs"].decode() == "2009-02-28T00:29:33.380000+00:00"


def test_real_c3_jpeg2000_frames_build_on_the_c3_grid(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    contents = JP2.read_bytes()
    (manual / "frame_1.jp2").write_bytes(contents)
    later = contents.replace(b"<TIME_OBS>16:54:06.137<", b"<TIME_OBS>17:06:06.137<")  # same length: boxes stay valid
    assert later != contents
    (manual / "frame_2.jp2").write_bytes(later)
    base = CmePatchesConfig(name="files_c3_base", source="fits", detector="C3", difference="base")
    build(base, tmp_path / "tfds", manual_dir=manual)
    [example] = [e for split in _examples(tmp_path / "tfds", "files_c3_base").values() for e in split]
    assert example["detector"] == b"C3" and example["rsun_per_pixel"] == np.float32(30.0 / 64)
    assert example["t_obs"] == b"2013-05-13T17:06:06.137000+00:00"
    # Two copies of one image: their difference is zero everywhere, so there is no CME.
    assert (example["image"] == 0).all() and np.isnan(example["cpa_deg"]) and example["excess"] == 0


def test_sequences_break_at_gaps_spans_and_image_kinds():
    t0 = datetime.datetime(2010, 1, 1, tzinfo=datetime.UTC)

    def frame(name, minutes, group=((512, 512), "MSB")):
        return _Frame(pathlib.Path(name), t0 + datetime.timedelta(minutes=minutes), group)

    frames = [
        frame("a", 0),
        frame("b", 12),
        frame("b2", 12),
        frame("c", 200),
        frame("d", 212),
        frame("e", 224, ((1024, 1024), "MSB")),
        frame("f", 236, ((1024, 1024), "MSB")),
        frame("g", 600),
    ]
    sequences, left_out = group_into_sequences(frames, max_gap_s=7200, max_span_s=6 * 3600)
    assert [[f.path.name for f in s] for s in sequences] == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert [p.name for p, _ in left_out] == ["b2", "g"]
    long_run = [frame(f"x{i}", 12 * i) for i in range(40)]  # 7.8 h of frames
    sequences, _ = group_into_sequences(long_run, max_gap_s=7200, max_span_s=6 * 3600)
    assert [len(s) for s in sequences] == [31, 9]


def test_bad_build_requests_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="fits config needs manual_dir"):
        build("files", tmp_path)
    with pytest.raises(ValueError, match="difference must be 'running' or 'base'"):
        build(CmePatchesConfig(name="odd", source="fits", difference="ratio"), tmp_path, manual_dir=tmp_path)
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "notes.txt").write_text("not LASCO")
    with pytest.raises(FileNotFoundError, match=r"no sequence of two or more LASCO C2 frames \(0 broken, 1 ignored;"):
        build("files", tmp_path / "tfds", manual_dir=manual)
