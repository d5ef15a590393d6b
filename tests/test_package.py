"""The package as an installed program: version, `python -m solarjax`, declared dependencies."""
import importlib.metadata
import subprocess
import sys

import solarjax


def test_python_m_solarjax_reports_the_installed_version():
    out = subprocess.run([sys.executable, "-m", "solarjax", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"solarjax {solarjax.__version__}"
    assert importlib.metadata.version("solarjax") == solarjax.__version__


def test_test_only_packages_are_not_runtime_dependencies():
    requires = importlib.metadata.requires("solarjax")
    runtime = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith("sunkit-image") for r in runtime)
    assert any(r.startswith("sunkit-image") and 'extra == "test"' in r for r in requires)
