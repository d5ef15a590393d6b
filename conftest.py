"""Shared pytest fixtures.

Tests run JAX on several forced CPU devices so that sharded code paths are exercised on a laptop;
the flag must be set before JAX is first imported.
"""

import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")  # tests.helpers.FORCED_DEVICES_FLAG
os.environ.setdefault("JAX_PLATFORMS", "cpu")
from solarjax.cli.program import prefer_fast_cpu_compilation  # noqa: E402

prefer_fast_cpu_compilation()  # as the `solarjax` program does (and so the CLI subprocesses the tests start)
# No persistent XLA cache for the tests (nor, by default, for the CLI subprocesses they start): XLA:CPU has
# aborted the whole test process three times while serialising a `steer_to` program for that cache, in three
# different test modules, on loaded and idle machines alike.
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
os.environ.pop("SOLARJAX_COMPILATION_CACHE", None)

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent


RELEASE_AT_MAPPINGS = 16_384
RELEASE_AT_RSS_BYTES = 3 << 30


def _process_footprint() -> tuple[int, int]:
    """(memory mappings, resident bytes) of this process; (0, 0) where /proc is not there."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            mappings = sum(1 for _ in maps)
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return mappings, resident
    except OSError:
        return 0, 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops JAX's compiled programs after a test module once the process holds more than
    `RELEASE_AT_MAPPINGS` memory mappings or `RELEASE_AT_RSS_BYTES` resident. One process runs a whole
    share of the suite; without this it keeps every executable it ever compiled (about 3 mappings each, several GB), and
    XLA:CPU's compiler crashed the process twice at the same point, 68% into the suite, in a module that
    passes alone. (Clearing after every module recompiles what later modules share; whether the threshold
    saves time overall is not yet measured.)"""
    yield
    mappings, resident = _process_footprint()
    if mappings > RELEASE_AT_MAPPINGS or resident > RELEASE_AT_RSS_BYTES:
        import jax

        jax.clear_caches()


def pytest_collection_modifyitems(config, items):
    """Orders the test modules for two workers (pytest-xdist, whole modules each): the first module that needs the
    quick demo first, so one worker starts building it at once, then every module that does not need it, then the
    other demo modules, which by then find it built (instead of a second worker waiting for it from the start)."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    needs_demo = [name for name, tests in modules.items() if any("demo_workdir" in t.fixturenames for t in tests)]
    others = [name for name in modules if name not in needs_demo]
    order = needs_demo[:1] + others + needs_demo[1:]
    items[:] = [item for name in order for item in modules[name]]


SHARED_PROCESS_MODULES = ("tests/test_app_aia.py", "tests/test_app_api.py", "tests/test_app_browser.py")
"""The modules that serve the quick demo in the web app. With ``--dist loadfile`` one worker runs them one after
the other, so the programs every app compiles while it warms up (its steering paths, searches and encoders) are
compiled once per suite, not once per module (benchmarks/README.md, session 31)."""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with `SHARED_PROCESS_MODULES` one unit of work (any other ``--dist``: xdist's own)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedAppScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_PROCESS_MODULES[0] if module in SHARED_PROCESS_MODULES else module

    return SharedAppScheduling(config, log)


def _shared_data_dir() -> pathlib.Path:
    env = os.environ.get("SOLARJAX_SHARED_DATA")
    return pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real SHARP files of ../shared/data (or $SOLARJAX_SHARED_DATA)."""
    path = _shared_data_dir()
    if not (path / "sharp_cea").is_dir():
        pytest.fail(f"real test data not found at {path}: set SOLARJAX_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def real_br_files(shared_data) -> list[pathlib.Path]:
    """The 40 real Br frames (16 HARPs)."""
    return sorted((shared_data / "sharp_cea").glob("*.Br.fits"))


@pytest.fixture(scope="session")
def corrupt_files(shared_data) -> list[pathlib.Path]:
    """Three real broken downloads: one empty, two truncated RICE-compressed files."""
    return sorted((shared_data / "sharp_cea_corrupt").iterdir())


def _artefact_code_hash() -> str:
    """sha256 of every source file that shapes the demo's artefacts (not the web app)."""
    digest = hashlib.sha256()
    files = [
        *REPO_ROOT.glob("solarjax/**/*.py"),
        *REPO_ROOT.glob("data_builders/**/*.py"),
        *REPO_ROOT.glob("experiments/configs/*.py"),
    ]
    for path in sorted(f for f in files if "app" not in f.relative_to(REPO_ROOT).parts[:2]):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def aia_fits(tmp_path_factory) -> dict[int, pathlib.Path]:
    """sunpy's real level-1 171 A full disk, and copies of it labelled 193 and 211 A (wavelength -> path)."""
    import sunpy.data.test
    from astropy.io import fits

    real = pathlib.Path(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    folder = tmp_path_factory.mktemp("aia_fits")
    files = {171: real}
    for wavelength in (193, 211):
        with fits.open(real) as hdus:
            hdus[0].header["WAVELNTH"] = wavelength
            files[wavelength] = folder / f"aia_{wavelength}_level1.fits"
            hdus.writeto(files[wavelength])
    return files


@pytest.fixture(scope="session")
def demo_workdir() -> pathlib.Path:
    """Output of `solarjax demo --quick`, built once per code version (a few minutes) in the temp folder.

    Built as a user builds it: by the `solarjax` program in a process of its own, on one CPU device (the tests'
    forced devices, which the sharded code paths' own tests use, made its GAN stage half as slow again). Test
    worker processes (pytest-xdist) wait for each other: the first builds it, the others then find its stages done.
    SOLARJAX_DEMO_WORKDIR points the tests at an existing demo output instead.
    """
    override = os.environ.get("SOLARJAX_DEMO_WORKDIR")
    if override:
        return pathlib.Path(override)
    workdir = pathlib.Path(tempfile.gettempdir()) / f"solarjax-demo-quick-{_artefact_code_hash()}"
    from tests.helpers import demo_run_lock

    with demo_run_lock(workdir):  # blocks while another worker builds it
        _run_quick_demo(workdir)
    return workdir


def _run_quick_demo(workdir: pathlib.Path) -> None:
    """``solarjax demo --quick --outdir WORKDIR`` from this checkout without the forced devices (it skips the stages
    already done), tracebacks on; its output is appended to WORKDIR.log, whose end a failure shows."""
    from tests.helpers import one_device_env

    path = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = one_device_env(PYTHONPATH=path, SOLARJAX_TRACEBACK="1")
    log = workdir.with_name(workdir.name + ".log")
    with open(log, "a") as out:
        command = [sys.executable, "-m", "solarjax", "demo", "--quick", "--outdir", str(workdir)]
        run = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
        status = run.returncode
    if status:
        pytest.fail(f"solarjax demo --quick exited {status}; the end of {log}:\n{log.read_text()[-3000:]}")
