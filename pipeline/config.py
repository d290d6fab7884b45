"""Configs are data: YAML files under ``configs/`` loaded into frozen dataclasses.

Each file is validated once, at load time: unknown keys, wrong types and values out of range
raise :class:`PipelineError` naming the file and the key.  CLI flags override individual keys
(``with_overrides``); the resolved config is what gets logged to MLflow (``flatten``).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError


def config_root() -> Path:
    """The configs folder: shipped inside the wheel as ``pipeline/configs``, or the repo's."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


def available(group: str) -> list[str]:
    """Names of the configs in ``configs/<group>/`` (e.g. the denoise models)."""
    return sorted(p.stem for p in (config_root() / group).glob("*.yaml"))


def read_yaml(group: str, name_or_path: str) -> tuple[dict, str]:
    """Read ``configs/<group>/<name>.yaml`` or an explicit YAML path; return (data, origin)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_root() / group / f"{name_or_path}.yaml"
        if not path.is_file():
            raise PipelineError(
                f"unknown {group} config {name_or_path!r}; available: {', '.join(available(group))}")
    elif not path.is_file():
        raise PipelineError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path} must hold a mapping of keys to values")
    return data, str(path)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise PipelineError(f"{where} must be a mapping")
        return from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        return _check_type(value, next(a for a in options if a is not type(None)), where)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        if not isinstance(value, (list, tuple)):
            raise PipelineError(f"{where} must be a list, got {value!r}")
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise PipelineError(f"{where} must be one of {list(typing.get_args(annotation))}, got {value!r}")
        return value
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (str, bool) and isinstance(value, annotation):
        return value
    name = getattr(annotation, "__name__", str(annotation))
    raise PipelineError(f"{where} must be {name}, got {value!r}")


def from_dict(cls, data: dict, where: str):
    """Build dataclass ``cls`` from ``data``, checking keys and types; ``where`` names the source."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PipelineError(f"unknown key {unknown[0]!r} in {where} (known: {', '.join(sorted(names))})")
    values = {k: _check_type(v, hints[k], f"{where}: {k}") for k, v in data.items()}
    try:
        return cls(**values)
    except PipelineError as exc:
        raise PipelineError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:  # engine configs validate with ValueError
        raise PipelineError(f"{where}: {exc}") from None


def require(condition: bool, message: str) -> None:
    """Raise a PipelineError with ``message`` unless ``condition`` (used in __post_init__)."""
    if not condition:
        raise PipelineError(message)


def with_overrides(config, **overrides):
    """A copy of ``config`` with the non-None overrides applied (and validated again)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **changes) if changes else config


def flatten(config, prefix: str = "") -> dict[str, Any]:
    """Dotted ``key: value`` pairs of a (nested) config dataclass, for MLflow params."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def to_yaml(config) -> str:
    """The resolved config as YAML (logged as an artifact with every run)."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
