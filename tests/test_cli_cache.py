"""The CLI keeps compiled XLA programs between commands in the user's cache folder only when asked to, and compiles
at XLA's optimisation level 2 unless the user's XLA_FLAGS set a level."""

import json
import os
import subprocess
import sys


def _cache_dir_chosen(env: dict) -> str | None:
    code = (
        "from solarjax.cli import program; program._use_compilation_cache(); import json, os; "
        "print(json.dumps(os.environ.get('JAX_COMPILATION_CACHE_DIR')))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_cli_compilation_cache_is_opt_in_under_xdg_cache_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "SOLARJAX_COMPILATION_CACHE")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    assert _cache_dir_chosen(env) is None  # off by default
    env["SOLARJAX_COMPILATION_CACHE"] = "0"
    assert _cache_dir_chosen(env) is None
    env["SOLARJAX_COMPILATION_CACHE"] = "1"
    assert _cache_dir_chosen(env) == str(tmp_path / "solarjax" / "jax")


def test_jax_own_cache_setting_is_left_as_the_user_set_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    env["SOLARJAX_COMPILATION_CACHE"] = "1"
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
    assert _cache_dir_chosen(env) == str(tmp_path / "mine")
    env["JAX_COMPILATION_CACHE_DIR"] = ""  # the user's way to turn it off stays off
    assert _cache_dir_chosen(env) == ""


def _xla_flags_chosen(env: dict) -> str:
    code = "from solarjax.cli import program; program.prefer_fast_cpu_compilation(); import os; print(os.environ['XLA_FLAGS'])"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_cli_compiles_at_level_2_unless_the_user_chose_a_level():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    assert _xla_flags_chosen(env) == "--xla_backend_optimization_level=2"
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    assert _xla_flags_chosen(env) == "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=2"
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=3"
    assert _xla_flags_chosen(env) == "--xla_backend_optimization_level=3"


def test_the_level_reaches_xla():
    """XLA refuses a level it does not know, so the flag is read (and spelled as XLA spells it)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = "from solarjax.cli import program; program.prefer_fast_cpu_compilation(); import jax; print(jax.numpy.ones(2).sum())"
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
        == "2.0"
    )
    env["XLA_FLAGS"] = "--xla_backend_optimisation_level=2"  # misspelt: XLA stops the process
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).returncode != 0
