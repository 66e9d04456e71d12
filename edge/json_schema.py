"""Validate JSON inputs against the JSON Schemas edgekit ships: the first problem as one line."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from edge.errors import EdgekitError


@cache
def _validator(schema_file: Path) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_file.read_text(encoding="utf-8")))


def json_path(parts: Any) -> str:
    """``images[3].file_name`` for a jsonschema ``absolute_path``."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return text.lstrip(".") or "(top level)"


def check_against(schema_file: Path, data: Any, what: str) -> None:
    """Raise :class:`EdgekitError` ``"{what} field {path}: {problem}"`` on the most relevant problem."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(Path(schema_file)).iter_errors(data))
    if error is not None:
        message = error.message
        if (
            error.validator == "pattern"
            and isinstance(error.schema, dict)
            and error.schema.get("description")
        ):
            message = f"{error.instance!r} is not allowed ({error.schema['description']})"  # not the regex
        message = message if len(message) <= 160 else message[:157] + "..."
        raise EdgekitError(f"{what} field {json_path(error.absolute_path)}: {message}")
