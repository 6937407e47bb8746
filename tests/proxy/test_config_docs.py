"""docs/proxy.md keeps up with the configuration models: every field has a row in the reference,
and the example on the page is the one shipped in the package."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from stageless.proxy.config import ProxyConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "proxy.md"
ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def _model_and_list(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model inside ``annotation`` (through Optional, tuple, Annotated), and whether a list
    of it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in get_args(annotation):
        model, many = _model_and_list(arg)
        if model is not None:
            return model, many or getattr(annotation, "__origin__", None) is tuple
    return None, False


def field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        inner, many = _model_and_list(field.annotation)
        if inner is not None:
            yield from field_paths(inner, f"{path}[]." if many else f"{path}.")


def test_the_walk_finds_nested_fields() -> None:
    paths = set(field_paths(ProxyConfig))
    assert "services[].split.sticky.client_address" in paths
    assert "services[].shadow.compare.unordered_arrays" in paths
    assert "signing_keys[].secret_env" in paths
    assert len(paths) > 60


def test_every_field_has_a_row_in_the_reference() -> None:
    documented = set(ROW.findall(DOC.read_text()))
    missing = [path for path in field_paths(ProxyConfig) if path not in documented]
    assert not missing, f"fields with no row in docs/proxy.md: {missing}"


def test_every_row_of_the_reference_is_a_field() -> None:
    paths = set(field_paths(ProxyConfig))
    text = DOC.read_text()
    reference = text[text.index("## Configuration reference") : text.index("## Routing")]
    unknown = [row for row in ROW.findall(reference) if row not in paths and row != "field"]
    assert not unknown, f"rows naming no field: {unknown}"


def test_the_page_shows_the_shipped_example() -> None:
    text = DOC.read_text()
    section = text[text.index("## Example configuration") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", 8)]
    shipped = (resources.files("stageless") / "examples" / "proxy.yaml").read_text()
    assert block == shipped
