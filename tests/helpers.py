"""Helpers shared by the tests (test files import from here, never from each other).

toy generator  `toy_generator()`: an analytic bipole generator with known latent directions, for the
               steering tests. It maps z [N, 100] to one bipolar active region per latent, like a GAN
               would, but with known physics: the flux amplitude grows with z[0] (so TUF, TPF, TNF grow
               along +e0), the polarity separation with z[1] (PSEP grows along +e1), the tilt with z[2]
               (positive tilt puts the negative polarity lower: tilt grows along +e2); z[3] changes the
               blob width, z[4:6] move the bipole, z[6:22] add weak smooth background field below the
               polarity threshold, and z[22:] are ignored. Differentiable, jit-able and cheap, so the
               tests check fitted directions, edits, targeting and inversion against known answers
               (tests/test_steering_toy.py checks the toy's own claims with the exact physics).
torch          `require_torch()`: the PyTorch parity tests' torch; skipped when torch is not installed,
               except under ``make parity`` (SOLARJAX_REQUIRE_TORCH=1), where a missing torch fails.
web app        `LIMITS` (the app tests' server limits), `png_pixels` / `data_url_pixels` (decoded PNGs),
               `make_encoder` (an untrained SimSiam encoder), `build_aia_artefacts` (a small real AIA
               search: `aia_patches/synthetic` embedded and indexed); `CHROMIUM` and its headless flags.
GAN training   `bipole_patches`, `ArrayIterator` (in-memory batches with grain's iterator protocol, a kill or
               a NaN batch on request), `load_config` (an experiments/configs config) and `tiny_config`
               (a GAN run of a few steps on `BATCH` patches).
CLI            `cli_status(argv)`: the exit status of ``solarjax ARGV`` run in process (argparse's exits
               included); `index_build_argv` / `search_argv`: the argv of ``solarjax index build`` on a
               demo output and of ``solarjax search`` against an index.
"""

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax.app.artefacts import AiaArtefacts
from solarjax.app.state import ServerLimits
from solarjax.steering.directions import LatentGenerator

SIZE = 128
LATENT_DIM = 100

FORCED_DEVICES_FLAG = "--xla_force_host_platform_device_count"
"""The XLA flag by which conftest.py gives the test processes 4 CPU devices."""


def one_device_env(**extra: str) -> dict[str, str]:
    """This process's environment for a subprocess on one CPU device, as a user runs the program: XLA_FLAGS without
    the forced device count (its other flags kept), with ``extra`` set."""
    flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if not flag.startswith(FORCED_DEVICES_FLAG)]
    return {**os.environ, "XLA_FLAGS": " ".join(flags), **extra}


@contextlib.contextmanager
def demo_run_lock(workdir: pathlib.Path):
    """Held by every test process that runs the demo on the shared quick-demo folder (conftest's `demo_workdir`
    build, `tests/test_demo.py`'s rerun): one at a time, as the demo's own lock on its folder refuses a second run at
    once. The lock file is ``<temp dir>/<folder name>.build-lock``."""
    with open(pathlib.Path(tempfile.gettempdir()) / f"{pathlib.Path(workdir).name}.build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another process runs it; released on close
        yield


BACKGROUND_DIMS = slice(6, 22)


def _background_basis() -> np.ndarray:
    """[16, SIZE, SIZE] smooth fields (products of low-frequency sines), peak 1."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    fields = [np.sin(np.pi * (i + 1) * rows) * np.sin(np.pi * (j + 1) * cols) for i in range(4) for j in range(4)]
    return np.stack(fields).astype(np.float32)


def toy_apply(params, z):
    """z [N, 100] -> images [N, 128, 128, 1] in (-1, 1): one Gaussian bipole plus weak background."""
    squash = jnp.tanh(z[:, :6] / 2.0)
    amplitude = params["amplitude"] * (1.0 + 0.5 * squash[:, 0])  # 0.4 .. 1.2 of the base
    separation = 30.0 + 14.0 * squash[:, 1]  # pixels
    tilt = 0.6 * squash[:, 2]  # radians
    width = 5.5 + 1.5 * squash[:, 3]  # pixels
    centre_row = 64.0 + 6.0 * squash[:, 4]
    centre_col = 64.0 + 6.0 * squash[:, 5]
    half_row, half_col = 0.5 * separation * jnp.sin(tilt), 0.5 * separation * jnp.cos(tilt)
    rows = jnp.arange(SIZE, dtype=jnp.float32)[None, :, None]
    cols = jnp.arange(SIZE, dtype=jnp.float32)[None, None, :]

    def blob(row, col):
        return jnp.exp(
            -((rows - row[:, None, None]) ** 2 + (cols - col[:, None, None]) ** 2) / (2.0 * width[:, None, None] ** 2)
        )

    # Positive polarity leads (larger column); positive tilt puts the negative one lower (larger row).
    field = amplitude[:, None, None] * (
        blob(centre_row - half_row, centre_col + half_col) - blob(centre_row + half_row, centre_col - half_col)
    )
    field = field + 0.002 * jnp.einsum("nk,khw->nhw", z[:, BACKGROUND_DIMS], params["background"])
    return jnp.tanh(field)[..., None]


def init_generator(module, key: jax.Array, latent_dim: int = 100) -> dict:
    """``module.init(key, zeros [1, latent_dim])`` as one compiled program (run eagerly, a structured generator's
    init compiles each of its primitives apart)."""
    return jax.jit(module.init)(key, jnp.zeros((1, latent_dim)))


@functools.cache
def toy_generator(amplitude: float = 0.8) -> LatentGenerator:
    """The toy generator (one object per amplitude, so jitted programs are compiled once)."""
    params = {"amplitude": jnp.float32(amplitude), "background": jnp.asarray(_background_basis())}
    return LatentGenerator(toy_apply, params, fingerprint=f"toy-bipole-v1-amplitude-{amplitude}", latent_dim=LATENT_DIM)


def require_torch():
    """The ``torch`` module: a skip when it is not installed, a failure under SOLARJAX_REQUIRE_TORCH=1."""
    if os.environ.get("SOLARJAX_REQUIRE_TORCH") == "1":
        import torch

        return torch
    return pytest.importorskip("torch")


def cli_status(argv: list[str]) -> int:
    """The exit status of ``solarjax ARGV`` run in this process (argparse errors exit from inside parse_args)."""
    from solarjax import cli

    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return exit_.code


def index_build_argv(demo_workdir, out, *extra: str) -> list[str]:
    """``solarjax index build`` of the demo output's encoder and dataset into `out`, then `extra`."""
    ssl, data_dir = demo_workdir / "simsiam", demo_workdir / "tfds"
    return ["index", "build", "--ssl", str(ssl), "--data-dir", str(data_dir), "--out", str(out), *extra]


def search_argv(query, index, ssl, *extra: str) -> list[str]:
    """``solarjax search QUERY`` against the index folder `index` with the encoder run `ssl`, then `extra`."""
    return ["search", str(query), "--index", str(index), "--ssl", str(ssl), *extra]


# ------------------------------------------------------------------------------------------------ web app
LIMITS = ServerLimits(max_upload_bytes=4 * 2**20, max_pending=4, workers=2)
AIA_WAVELENGTHS = (171, 193, 211)
AIA_NUM_EXAMPLES = 40


def png_pixels(data: bytes) -> np.ndarray:
    import io

    from matplotlib import image as mpimg

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(data), format="png")


def data_url_pixels(url: str) -> np.ndarray:
    import base64

    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return png_pixels(base64.b64decode(url[len(prefix) :]))


def make_encoder(channels: int = len(AIA_WAVELENGTHS)):
    """A freshly initialised SimSiam encoder of ``channels`` input channels (backbone features)."""
    from solarjax import ssl
    from solarjax.models.simsiam import SimSiam
    from solarjax.train import simsiam as simsiam_train

    model_config = {"input_channels": channels, "width": 8, "projector_dims": (64, 64, 32), "predictor_hidden": 16}
    model = simsiam_train.make_model(model_config)
    variables = model.init(jax.random.key(0), np.zeros((2, 128, 128, channels), np.float32), train=False)
    params, stats = variables["params"], variables["batch_stats"]
    apply = jax.jit(
        lambda images: model.apply({"params": params, "batch_stats": stats}, images, False, method=SimSiam.embed)
    )
    return ssl.Encoder(
        embed=apply,
        fingerprint=ssl.encoder_fingerprint(model_config, params, stats, False),
        dim=model.feature_dim,
        projection=False,
        step=0,
        config={"model": model_config},
    )


def build_aia_artefacts(folder: pathlib.Path) -> AiaArtefacts:
    """aia_patches/synthetic in ``folder``/tfds, its train split embedded into a table, exact index."""
    import tensorflow_datasets as tfds

    from data_builders.aia_patches import aia_patches_dataset_builder
    from solarjax.retrieval import build_index, build_table_from_arrays, embed_images

    tfds_dir = folder / "tfds"
    aia_patches_dataset_builder.build("synthetic", tfds_dir, num_examples=AIA_NUM_EXAMPLES)
    source = tfds.data_source("aia_patches/synthetic", data_dir=str(tfds_dir), split="train")
    examples = [source[i] for i in range(len(source))]
    text = lambda value: value.decode() if isinstance(value, bytes) else str(value)  # noqa: E731
    metadata = {
        "dataset": ["aia_patches/synthetic:train"] * len(examples),
        "example_index": np.arange(len(examples)),
        "id": [text(e["id"]) for e in examples],
        "t_obs": [text(e["t_obs"]) for e in examples],
        "wavelengths": [",".join(map(str, e["wavelengths"])) for e in examples],
        "bbox": [",".join(map(str, e["bbox"])) for e in examples],
        **{name: np.array([e[name] for e in examples], np.float64) for name in ("hpc_x", "hpc_y", "mu")},
        "source": [text(e["source"]) for e in examples],
    }
    encoder = make_encoder()
    embeddings = embed_images(encoder.embed, np.stack([e["image"] for e in examples]))
    table = build_table_from_arrays(
        folder / "index" / "table", embeddings, metadata, encoder.fingerprint, dataset_name="aia_patches"
    )
    return AiaArtefacts(encoder, build_index(table, kind="exact"), tfds_dir)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ----------------------------------------------------------------------------- GAN training
REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH = 4  # one patch per forced CPU device


def load_config(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def bipole_patches(count: int, seed: int) -> np.ndarray:
    """[count, 128, 128, 1] float32 patches: a positive and a negative Gaussian spot plus noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:128, 0:128]
    patches = []
    for _ in range(count):
        (r1, c1), (r2, c2) = rng.uniform(30, 98, size=(2, 2))
        width = rng.uniform(6, 14)
        spot = lambda r, c: np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * width**2))  # noqa: E731
        field = 0.9 * spot(r1, c1) - 0.8 * spot(r2, c2) + 0.05 * rng.normal(size=(128, 128))
        patches.append(np.clip(field, -1, 1))
    return np.asarray(patches, np.float32)[..., None]


class ArrayIterator:
    """Deterministic in-memory batches with grain's iterator protocol (get_state/set_state bytes).

    Batch k holds patches (k * batch_size + i) mod N; with ``fail_at`` the k-th `next` raises,
    standing in for a killed process; ``nan_at`` makes the k-th batch NaN.
    """

    def __init__(self, images, batch_size, fail_at=None, nan_at=None):
        self.images, self.batch_size = images, batch_size
        self.fail_at, self.nan_at = fail_at, nan_at
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.position == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        index = (self.position * self.batch_size + np.arange(self.batch_size)) % len(self.images)
        batch = self.images[index]
        if self.position == self.nan_at:
            batch = np.full_like(batch, np.nan)
        self.position += 1
        return {"image": batch}

    def get_state(self) -> bytes:
        return json.dumps({"position": self.position}).encode()

    def set_state(self, state: bytes) -> None:
        self.position = json.loads(state.decode())["position"]

    def start_prefetch(self) -> None:
        pass


def tiny_config(total_steps=6, eval_every=0, arch="simple", name="gan_paper", matching_terms=True):
    """A GAN run of `total_steps` on `BATCH` patches; ``matching_terms=False`` drops the config's matching terms
    (their weights and starts) for tests of what a run does around its step, whose step then compiles faster."""
    config = load_config(name)
    config.model.arch = arch
    if not matching_terms:
        from solarjax.train import gan as gan_train

        for term in gan_train.MATCHING_TERMS:
            for key in (f"{term}_weight", f"{term}_start"):
                if key in config.model:
                    del config.model[key]
    config.batch_size = BATCH
    config.total_steps = total_steps
    config.log_every = 1
    config.checkpoint_every = 2
    config.keep_checkpoints = 2
    config.sample_every = 0
    config.num_grid_samples = 8
    config.eval_every = eval_every
    config.quality.num_samples = 16
    config.quality.num_reference = 16
    config.quality.batch_size = 8
    return config
