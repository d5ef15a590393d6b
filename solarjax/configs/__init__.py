"""The trainers' configs (ml_collections), shipped with the package so an installed wheel has them.

One base config per model with its variants, ``get_config(variant)``: `solarjax.configs.gan`
('synthetic', 'paper', 'sharp_full') and `solarjax.configs.simsiam` ('synthetic', 'aia_synthetic',
'sharp_full', 'cme_synthetic'). A config is named ``model`` or ``model:variant`` (``gan:paper``), by an
old name (``gan_synthetic``, see `ALIASES`), or by the path of any file defining ``get_config()``
(``experiments/configs/gan_paper.py``; ``my_config.py:arg`` passes ``arg`` to ``get_config``), and edited
field by field as ml_collections' config flags do (``batch_size=64``, ``optimizer.b1=0.9``)::

    config = solarjax.configs.load("gan:synthetic", overrides=["batch_size=64", "model.ema_decay=0.99"])

Both trainers count steps in ``total_steps``; configs saved before (SimSiam's ``num_steps``) are read
through `upgrade`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

MODELS = ("gan", "simsiam")
"""The base configs: ``solarjax.configs.<model>.get_config(variant)``."""

ALIASES = {
    "gan_synthetic": ("gan", "synthetic"),
    "gan_paper": ("gan", "paper"),
    "gan_sharp_full": ("gan", "sharp_full"),
    "simsiam_synthetic": ("simsiam", "synthetic"),
    "simsiam_aia_synthetic": ("simsiam", "aia_synthetic"),
    "simsiam_sharp_full": ("simsiam", "sharp_full"),
    "simsiam_cme_synthetic": ("simsiam", "cme_synthetic"),
}
"""The configs' names before the variants (one module each then): name -> (model, variant)."""

NAMES = tuple(ALIASES)
"""Every packaged config by its one-word name (each is also ``model:variant``)."""

RENAMED_FIELDS = {"num_steps": "total_steps"}
"""Top-level fields renamed since configs were first saved: old name -> name today."""


class ConfigError(ValueError):
    """A config that cannot be found or loaded, or an override that names no field or has the wrong type."""


def load(spec: str | os.PathLike, overrides: Sequence[str] = (), *, lock: bool = True) -> ml_collections.ConfigDict:
    """``get_config()`` of a packaged config name or a config file, with ``key=value`` overrides applied.

    Args:
      spec: ``model`` or ``model:variant`` (`MODELS`), a name of `NAMES`, or ``path.py`` / ``path.py:arg``
        (``get_config(arg)``).
      overrides: ``dotted.field=value`` strings, applied in order; the value is parsed as the field's type.
      lock: lock the result (no new fields, as ml_collections' config flags do).
    Raises:
      ConfigError: unknown name or missing file, no ``get_config``, unknown field or a value of the wrong type.
    """
    text = os.fspath(spec)
    if ".py:" in text:
        path_text, _, arg = text.partition(".py:")
        path_text += ".py"
    else:
        path_text, arg = text, ""
    name, _, name_arg = text.partition(":")
    path = pathlib.Path(path_text)
    if path.suffix == ".py" or path.is_file():
        module = _module_from_file(path)
    elif name in MODELS or (name in ALIASES and not name_arg):
        name, arg = (name, name_arg) if name in MODELS else ALIASES[name]
        module = importlib.import_module(f"solarjax.configs.{name}")
        if arg and arg not in module.VARIANTS:
            raise ConfigError(f"config {text!r}: {name} has no variant {arg!r} ({', '.join(module.VARIANTS)})")
    else:
        raise ConfigError(
            f"config {text!r} is neither a file nor a packaged config "
            f"({', '.join(f'{m}:VARIANT' for m in MODELS)}, {', '.join(NAMES)})"
        )
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config()")
    config = upgrade(module.get_config(arg) if arg else module.get_config())
    apply_overrides(config, overrides)
    if lock:
        config.lock()
    return config


def upgrade(config: ml_collections.ConfigDict | Mapping[str, Any]) -> ml_collections.ConfigDict:
    """`config` (a ConfigDict, or a saved ``config.json`` / checkpoint record as a dict) in today's field
    names (`RENAMED_FIELDS`: ``num_steps`` -> ``total_steps``): a ConfigDict with no old name is returned
    as it is, anything else as a new ConfigDict (the argument is left unchanged).

    Raises:
      ConfigError: both names are set to different values (e.g. ``config.num_steps = 4`` on a config
        that has ``total_steps``: set ``total_steps``).
    """
    if isinstance(config, ml_collections.ConfigDict):
        if not any(old in config for old in RENAMED_FIELDS):
            return config
        config = config.copy_and_resolve_references()
    else:
        config = ml_collections.ConfigDict(dict(config))
    for old, new in RENAMED_FIELDS.items():
        if old not in config:
            continue
        if new in config and config[new] != config[old]:
            raise ConfigError(
                f"config sets both {old} = {config[old]} and {new} = {config[new]}: {old} is the "
                f"old name of {new}; set {new} only"
            )
        with config.unlocked():
            value = config[old]
            del config[old]
            config[new] = value
    return config


def _module_from_file(path: pathlib.Path):
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    spec = importlib.util.spec_from_file_location(f"solarjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Sets each ``dotted.field=value`` of `overrides` in `config` (in place; also returned).

    The value is parsed as the field's current type: bool (true/false/1/0/yes/no), int, float (an int is
    accepted), str, tuple or list (a Python literal, e.g. ``(512,512,100)``); a field that is None takes a
    Python literal, else the text. Unknown fields and groups of fields are refused.
    """
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"config override {item!r}: expected FIELD=VALUE, e.g. batch_size=64")
        if key in RENAMED_FIELDS and key not in config:
            key = RENAMED_FIELDS[key]  # an old name on the command line sets today's field
        *parents, leaf = key.split(".")
        node = config
        for depth, name in enumerate(parents):
            node = _child(node, name, ".".join(parents[: depth + 1]))
            if not isinstance(node, ml_collections.ConfigDict):
                where = ".".join(parents[: depth + 1])
                raise ConfigError(f"config override {item!r}: {where} is not a group of fields")
        current = _child(node, leaf, key)
        if isinstance(current, ml_collections.ConfigDict):
            raise ConfigError(
                f"config override {item!r}: {key} is a group of fields; set one of "
                f"{', '.join(f'{key}.{k}' for k in current.keys())}"
            )
        value = _parse_as(current, text.strip(), key)
        try:
            setattr(node, leaf, value)
        except TypeError as error:  # ml_collections' own type check
            raise ConfigError(f"config override {item!r}: {error}") from None
    return config


def _child(node: ml_collections.ConfigDict, name: str, dotted: str) -> Any:
    if name not in node:
        raise ConfigError(f"unknown config field {dotted!r} (fields here: {', '.join(sorted(node.keys()))})")
    return node[name]


def _parse_as(current: Any, text: str, key: str) -> Any:
    """`text` parsed as the type of `current`, the field `key`'s value."""
    wrong = ConfigError(f"config field {key} is {type(current).__name__} ({current!r}); cannot set it to {text!r}")
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise wrong
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise wrong from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise wrong from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise wrong from None
        if not isinstance(value, (tuple, list)):
            raise wrong
        return type(current)(value)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
