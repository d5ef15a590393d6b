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


# ----------------------------------------------------------------------------------- packaged configs
import pathlib  # noqa: E402

import pytest  # noqa: E402

from solarjax import configs  # noqa: E402
from solarjax.cli import main  # noqa: E402
from solarjax.models import gan as gan_models  # noqa: E402
from solarjax.train.loop import load_config_file  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", configs.NAMES)
def test_experiment_config_paths_are_the_packaged_configs(name):
    packaged = configs.load(name)
    assert packaged.is_locked
    assert load_config_file(REPO / "experiments" / "configs" / f"{name}.py").to_dict() == packaged.to_dict()
    assert configs.load(REPO / "experiments" / "configs" / f"{name}.py").to_dict() == packaged.to_dict()
    # thin: the experiment file holds no fields of its own
    assert "ConfigDict(" not in (REPO / "experiments" / "configs" / f"{name}.py").read_text()


def test_gan_paper_is_gan_synthetic_with_the_paper_model():
    from solarjax.configs import gan as gan_configs

    paper, synthetic = configs.load("gan_paper").to_dict(), configs.load("gan_synthetic").to_dict()
    assert paper["model"] == {**gan_configs.PLAIN_MODEL, "arch": "simple"}
    assert synthetic["model"] == gan_configs.DEFAULT_MODEL
    assert synthetic["model"]["arch"] in gan_models.INSTRUMENT_NOISE_ARCHITECTURES
    assert configs.load("gan:cme_synthetic").to_dict()["model"] == gan_configs.PLAIN_MODEL
    paper["model"] = synthetic["model"]
    paper["quality"]["best_metric"] = synthetic["quality"]["best_metric"]
    assert paper == synthetic


def test_overrides_are_parsed_as_the_field_type():
    config = configs.load(
        "simsiam_synthetic",
        [
            "batch_size=8",
            "optimizer.base_lr=1",
            "optimizer.cosine_decay=true",
            "model.projector_dims=(64, 64, 10)",
            "augment=paper",
        ],
    )
    assert config.batch_size == 8 and isinstance(config.batch_size, int)
    assert config.optimizer.base_lr == 1.0 and isinstance(config.optimizer.base_lr, float)
    assert config.optimizer.cosine_decay is True
    assert config.model.projector_dims == (64, 64, 10)
    assert config.augment == "paper"
    with pytest.raises(AttributeError):  # locked: a typo cannot add a field afterwards
        config.batch_sise = 4


@pytest.mark.parametrize(
    "override, message",
    [
        ("batch_size=6.5", "batch_size is int (64); cannot set it to '6.5'"),
        ("optimizer.cosine_decay=maybe", "optimizer.cosine_decay is bool"),
        ("optimizer.lr=0.1", "unknown config field 'optimizer.lr'"),
        ("knn=3", "knn is a group of fields; set one of knn.num_patches"),
        ("batch_size", "expected FIELD=VALUE"),
    ],
)
def test_bad_overrides_are_refused_with_the_field_named(override, message):
    with pytest.raises(configs.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        configs.load("simsiam_synthetic", [override])


def test_config_file_with_an_argument(tmp_path):
    path = tmp_path / "variants.py"
    path.write_text(
        "from solarjax.configs import gan_synthetic\n\n"
        "def get_config(arg='base'):\n    config = gan_synthetic.get_config()\n"
        "    config.model.latent_dim = {'base': 100, 'small': 16}[arg]\n    return config\n"
    )
    assert configs.load(f"{path}:small").model.latent_dim == 16
    assert configs.load(path).model.latent_dim == 100


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "gan", "--config", "gan_paper", "--config.batch_size=abc", "--workdir", "W"],
            "solarjax train gan: error: config field batch_size is int (32); cannot set it to 'abc'",
        ),
        (
            ["train", "simsiam", "--config", "simsiam_synthetic", "--config.nope", "3", "--workdir", "W"],
            "solarjax train simsiam: error: unknown config field 'nope'",
        ),
        (
            ["train", "gan", "--config", "no_such_config", "--workdir", "W"],
            "solarjax train gan: error: config 'no_such_config' is neither a file nor a packaged config",
        ),
        (["physics", "--config.x=1", "a.fits"], "solarjax physics: error: --config.x=1: config overrides are for"),
    ],
)
def test_cli_config_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "W").exists()


def _options(parser, prefix=("solarjax",)):
    """(command words, action) for every argument of every (sub)command."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*prefix, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield prefix, action


def test_every_option_has_help_that_states_its_default():
    from solarjax.cli import build_parser

    missing = []
    for words, action in _options(build_parser()):
        name = f"{' '.join(words)} {'/'.join(action.option_strings) or action.dest}"
        if not action.help:
            missing.append(f"{name}: no help")
        elif action.option_strings and action.default not in (None, False) and "default" not in action.help:
            missing.append(f"{name}: default {action.default!r} not stated")
    assert not missing, missing
    assert len(list(_options(build_parser()))) > 80


def test_help_shows_percent_signs_once(capsys):
    with pytest.raises(SystemExit):
        main(["steer", "generate", "--help"])
    out = capsys.readouterr().out
    assert "tuf=+50%" in out and "%%" not in out


def test_declared_floors_are_met_by_the_tested_environment():
    """No floor above what the tests run on, and the JAX stack's floors are tested versions, not guesses."""
    import re
    import tomllib

    from packaging.version import Version

    floors = {}
    for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        found = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?>=([0-9][0-9A-Za-z.]*)", requirement)
        if found:
            floors[found[1]] = Version(found[2])
    assert {"jax", "flax", "optax", "orbax-checkpoint", "grain"} <= set(floors)
    for name, floor in floors.items():
        assert Version(importlib.metadata.version(name)) >= floor, name
    assert floors["jax"] >= Version("0.10")  # the code uses APIs of jax 0.10 (not 0.4.35, as declared before)
