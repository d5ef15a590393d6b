"""Units at the edges: FITS cubes of generated / steered patches carry a WCS and provenance; `preprocess`
converts a field Quantity (a tesla field is no longer 1e4 too small); `physics.quantities` refuses raw
gauss and Quantities with the fix named."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from solarjax import cli, gan, physics
from solarjax.data.preprocess import normalise_field, preprocess


def _bipole(amplitude_gauss=800.0, shape=(96, 160)):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    blob = lambda r, c: np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 8.0**2))  # noqa: E731
    return amplitude_gauss * (blob(48, 50) - blob(48, 110))


# --------------------------------------------------------------------------------------- FITS cubes
def test_fits_cube_has_a_patch_grid_wcs_and_provenance(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (3, 128, 64, 1)).astype(np.float32)
    path = gan.write_fits_cube(
        images, tmp_path / "cube.fits", latents=np.zeros((3, 100)), header={"GANFP": ("abc", "weights")}
    )
    with fits.open(path) as hdus:
        header = hdus[0].header
        np.testing.assert_allclose(hdus[0].data, images[..., 0] * 1000.0, rtol=1e-6)
    assert header["BUNIT"] == "G" and header["BTYPE"] == "Br" and header["GANFP"] == "abc"
    assert header["ORIGIN"] == "solarjax" and header["CREATOR"].startswith("solarjax ")
    assert header["DATE"][:2] == "20" and "T" in header["DATE"]
    wcs = WCS(header)
    assert wcs.naxis == 3 and list(wcs.wcs.ctype) == ["PATCHX", "PATCHY", "SAMPLE"]
    # pixel (col, row, sample), 0-based: the first pixel's centre is half a pixel from the edge
    np.testing.assert_allclose(wcs.pixel_to_world_values(0, 0, 2), (0.5 / 64, 0.5 / 128, 2.0))
    np.testing.assert_allclose(wcs.pixel_to_world_values(63, 127, 0), (1 - 0.5 / 64, 1 - 0.5 / 128, 0.0))
    assert "plate scale of a generated patch is unknown" in str(header["COMMENT"]).replace("\n", "")


def test_cli_sample_and_steer_cubes_record_seed_and_request(demo_workdir, tmp_path):
    assert (
        cli.main(
            ["sample", "--workdir", str(demo_workdir / "gan"), "-n", "2", "--seed", "7", "--out", str(tmp_path / "s")]
        )
        == 0
    )
    with fits.open(tmp_path / "s.fits") as hdus:
        header = hdus[0].header
    assert header["SEED"] == 7 and header["GANSTEP"] >= 1 and WCS(header).naxis == 3
    assert (
        cli.main(
            [
                "steer",
                "generate",
                "--gan",
                str(demo_workdir / "gan"),
                "--set",
                "tuf=+50%",
                "-n",
                "1",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    with fits.open(tmp_path / "g.fits") as hdus:
        header = hdus[0].header
    assert "tuf=+50%" in header["STEERED"] and header["ORIGIN"] == "solarjax" and WCS(header).naxis == 3


# ------------------------------------------------------------------------------------- preprocess
def test_preprocess_converts_a_tesla_quantity_like_the_same_field_in_gauss():
    field = _bipole()
    in_gauss = preprocess(field)
    np.testing.assert_allclose(preprocess(field * 1e-4 * u.T), in_gauss, atol=1e-6)  # 800 G = 0.08 T
    np.testing.assert_allclose(preprocess(field * u.G), in_gauss, atol=0)
    np.testing.assert_allclose(preprocess(field * u.Mx / u.cm**2), in_gauss, atol=0)
    assert float(np.max(preprocess(np.full((8, 8), 0.2) * u.T, size=4))) == 1.0  # 2000 G clips to 1
    np.testing.assert_allclose(normalise_field(np.array([0.05]) * u.T), [0.5])
    with pytest.raises(ValueError, match=r"expected a magnetic field \(G, T or Mx/cm\^2\), got a quantity in Mx"):
        preprocess(field * u.Mx)


# ---------------------------------------------------------------------------------------- physics
def test_quantities_refuse_raw_gauss_and_quantities_naming_the_fix():
    field = _bipole()
    normalised = preprocess(field)[None]
    tuf = float(physics.quantities(normalised)["tuf"][0])
    assert 0 < tuf < 1
    raw_gauss = np.zeros((2, 128, 128), np.float32)  # a bipole in G: +800 G and -650 G squares
    raw_gauss[:, 40:50, 30:40], raw_gauss[:, 40:50, 90:100] = 800.0, -650.0
    with pytest.raises(ValueError, match=r"reach 800: a raw field in G\? preprocess it first"):
        physics.quantities(raw_gauss)
    with pytest.raises(ValueError, match="got a Quantity in G: preprocess it first"):
        physics.quantities(normalised * u.G)
    # normalised patches left unclipped (a few times 1000 G) are still accepted, and device arrays pass through
    unclipped = normalised * 3.0
    assert float(physics.quantities(unclipped)["tuf"][0]) == pytest.approx(3 * tuf, rel=1e-5)
    import jax.numpy as jnp

    assert float(physics.quantities(jnp.asarray(normalised))["tuf"][0]) == pytest.approx(tuf, rel=1e-6)
