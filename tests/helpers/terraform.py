"""The Terraform module, parsed offline (python-hcl2), and the Lambda build script as a module."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2

from tests.helpers.servers import ROOT

TF = ROOT / "terraform"
MODULE_FILES = sorted(TF.glob("*.tf"))


@functools.cache
def load_build_script() -> ModuleType:
    """scripts/build_lambda.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_lambda", ROOT / "scripts/build_lambda.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lambda"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ('"x"'); expressions stay '${...}'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if not k.startswith("__")}
    return value


@functools.cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open() as file:
        return hcl2.load(file)


def blocks(kind: str, files: list[Path] = MODULE_FILES) -> list[dict[str, Any]]:
    return [block for path in files for block in parsed(path).get(kind, [])]


def resources(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in blocks("resource"):
        for rtype, by_name in block.items():
            if unquote(rtype) == kind:
                found.update({unquote(n): body for n, body in by_name.items()})
    return found


@functools.cache
def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in blocks("locals"):
        merged.update({k: v for k, v in block.items() if not k.startswith("__")})
    return merged


def local(name: str) -> Any:
    return unquote(locals_()[name])
