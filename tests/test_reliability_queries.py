"""One unit convention for queries (Br in gauss in files and .npy), checked by range, and maps without
data refused, on every path: CLI `search` and `physics`, the Python API, the web app's upload."""

import io
import json
import shutil

import numpy as np
import pytest
from astropy.io import fits

from solarjax import cli
from solarjax.app import server, uploads
from solarjax.data import read_sharp
from solarjax.data.query_checks import check_gauss_map, check_normalised_images


@pytest.fixture(scope="module")
def br_map(real_br_files) -> np.ndarray:
    return read_sharp(real_br_files[0]).data


def test_gauss_check_refuses_normalised_maps_and_maps_without_data(br_map):
    assert check_gauss_map(br_map, "m").dtype == np.float32
    normalised = np.clip(np.nan_to_num(br_map), -1000, 1000) / 1000
    with pytest.raises(ValueError, match=r"m: largest \|Br\| is 1 G, which looks like a normalised patch"):
        check_gauss_map(normalised, "m")
    with pytest.raises(ValueError, match="no finite pixel"):
        check_gauss_map(np.full((50, 60), np.nan), "m")
    with pytest.raises(ValueError, match="2 infinite values"):
        check_gauss_map(np.where(np.arange(12).reshape(3, 4) < 2, np.inf, 300.0), "m")
    check_normalised_images(normalised[None], "q")
    with pytest.raises(ValueError, match="outside \\[-1, 1\\]: this looks like Br in gauss"):
        check_normalised_images(np.nan_to_num(br_map)[None], "q")
    with pytest.raises(ValueError, match="non-finite"):
        check_normalised_images(np.full((1, 8, 8), np.nan), "q")


def _search(demo_workdir, *queries, extra=()):
    return cli.main(
        [
            "search",
            *map(str, queries),
            "--index",
            str(demo_workdir / "index"),
            "--ssl",
            str(demo_workdir / "simsiam"),
            "-k",
            "4",
            "--json",
            "--rank",
            "ssl",
            *extra,
        ]
    )


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_cli_search_takes_npy_maps_in_gauss_like_the_fits_file(demo_workdir, real_br_files, br_map, tmp_path, capsys):
    gauss = tmp_path / "gauss.npy"
    np.save(gauss, br_map)
    assert _search(demo_workdir, real_br_files[0]) == 0
    [from_fits] = json.loads(capsys.readouterr().out)
    assert _search(demo_workdir, gauss) == 0
    [from_npy] = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in from_npy["results"]] == [r["row"] for r in from_fits["results"]]
    np.testing.assert_allclose(
        [r["similarity"] for r in from_npy["results"]], [r["similarity"] for r in from_fits["results"]], rtol=1e-5
    )
    assert max(r["similarity"] for r in from_npy["results"]) > 0.1  # not the all-0.000 of a unit mix-up


@pytest.mark.parametrize(
    "name, array, needle",
    [
        ("normalised.npy", "normalised", "looks like a normalised patch (B / 1000 G); queries are Br in gauss"),
        ("nan.npy", np.full((2, 64, 64), np.nan, np.float32), "nan.npy[0]: the map has no finite pixel"),
        ("inf.npy", np.full((64, 64), np.inf, np.float32), "infinite values"),
        ("cube.npy", np.ones((2, 3, 64, 64), np.float32), "[H, W] or [N, H, W] expected"),
    ],
)
def test_cli_search_refuses_bad_npy_queries_in_one_line(demo_workdir, br_map, tmp_path, capsys, name, array, needle):
    if isinstance(array, str):
        array = np.clip(np.nan_to_num(br_map), -1000, 1000)[None] / 1000
    np.save(tmp_path / name, array)
    assert _search(demo_workdir, tmp_path / name) == 2
    line = _one_line_error(capsys)
    assert line.startswith("solarjax search: error: ") and needle in line, line


@pytest.fixture(scope="module")
def all_nan_br(real_br_files, tmp_path_factory):
    """A real Br file with every pixel NaN (the header untouched)."""
    path = tmp_path_factory.mktemp("nan") / real_br_files[0].name
    with fits.open(real_br_files[0]) as hdus:
        index = next(i for i, h in enumerate(hdus) if h.data is not None)
        hdus[index].data = np.full_like(hdus[index].data, np.nan, dtype=np.float32)
        hdus.writeto(path, output_verify="ignore")
    return path


def test_all_nan_fits_is_refused_by_search_physics_api_and_upload(demo_workdir, all_nan_br, real_br_files, capsys):
    assert _search(demo_workdir, all_nan_br) == 2
    assert "no finite pixel" in _one_line_error(capsys)

    assert cli.main(["physics", str(all_nan_br), str(real_br_files[1])]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "no finite pixel" in captured.err
    assert "1 patches" in captured.out

    from solarjax import ssl
    from solarjax.retrieval import load_index

    encoder = ssl.load(demo_workdir / "simsiam")
    index = load_index(demo_workdir / "index" / "index", expected_fingerprint=encoder.fingerprint)
    with pytest.raises(ValueError, match="no finite pixel"):
        index.search_fits([all_nan_br], encoder, k=2)
    with pytest.raises(ValueError, match="looks like Br in gauss"):  # the API takes B / 1000 G
        index.search_images(np.nan_to_num(read_sharp(real_br_files[0]).data)[None, :128, :128], encoder, k=2)
    with pytest.raises(ValueError, match="non-finite"):
        index.search_images(np.full((1, 128, 128), np.nan, np.float32), encoder, k=2)

    with pytest.raises(server.UploadError, match="no finite pixel") as error:
        uploads.uploaded_image(all_nan_br.name, all_nan_br.read_bytes())
    assert error.value.status == 422


@pytest.mark.parametrize(
    "array, needle",
    [
        ("normalised", "looks like a normalised patch"),
        (np.full((64, 64), np.nan, np.float32), "no finite pixel"),
        (np.where(np.eye(64) > 0, np.inf, 100.0).astype(np.float32), "infinite values"),
    ],
)
def test_upload_refuses_normalised_and_empty_npy_maps(br_map, array, needle):
    if isinstance(array, str):
        array = np.clip(np.nan_to_num(br_map), -1000, 1000) / 1000
    buffer = io.BytesIO()
    np.save(buffer, array)
    with pytest.raises(server.UploadError, match=needle) as error:
        uploads.uploaded_image("query.npy", buffer.getvalue())
    assert error.value.status == 422 and str(error.value).startswith("query.npy: ")
    # a map in gauss goes through, preprocessed as in training
    good = io.BytesIO()
    np.save(good, br_map)
    image, _ = uploads.uploaded_image("query.npy", good.getvalue())
    assert image.shape == (1, 128, 128, 1) and 0.1 < np.abs(image).max() <= 1.0


def test_bad_segment_query_is_refused_by_search(demo_workdir, shared_data, tmp_path, capsys):
    bp = next(iter(sorted((shared_data / "sharp_cea").glob("*.Bp.fits"))), None)
    if bp is None:
        pytest.skip("no Bp segment in the shared data")
    assert _search(demo_workdir, bp) == 2
    assert "a Bp segment: the index holds Br patches" in _one_line_error(capsys)
    shutil.rmtree(tmp_path, ignore_errors=True)
