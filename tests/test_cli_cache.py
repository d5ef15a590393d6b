"""The CLI keeps compiled XLA programs between commands in the user's cache folder."""

import os
import subprocess
import sys


def _cache_dir_chosen(env: dict) -> str:
    code = (
        "from solarjax.cli import program; program._use_compilation_cache(); import os; "
        "print(os.environ.get('JAX_COMPILATION_CACHE_DIR'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_cli_caches_compiled_programs_under_xdg_cache_home_unless_told_otherwise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    assert _cache_dir_chosen(env) == str(tmp_path / "solarjax" / "jax")
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
    assert _cache_dir_chosen(env) == str(tmp_path / "mine")
    env["JAX_COMPILATION_CACHE_DIR"] = ""  # the user's way to turn it off stays off
    assert _cache_dir_chosen(env) == ""
