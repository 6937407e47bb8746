"""docs/rollouts.md keeps up with the code: the transition table is TRANSITIONS, every plan field
has a row, the example is the shipped one, and every phase, event and command is described."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from stageless.rollout import commands, events
from stageless.rollout.machine import TRANSITIONS
from stageless.rollout.phases import Phase
from stageless.rollout.plan import RolloutPlan

DOC = Path(__file__).resolve().parents[2] / "docs" / "rollouts.md"
ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n{title}\n")
    level = title.split(" ")[0]
    following = re.compile(rf"^#{{2,{len(level)}}} ", re.MULTILINE)  # the next heading as high
    found = following.search(text, start + len(title) + 2)
    return text[start : found.start() if found else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the first Markdown table in ``text`` (header and rule skipped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_transition_table_is_the_machines() -> None:
    documented: dict[tuple[Phase, str], frozenset[Phase]] = {}
    for source, event, targets in table_rows(section("### Transitions")):
        (source_name,), (event_name,) = names(source), names(event)
        key = (Phase(source_name), event_name)
        assert key not in documented, f"row repeated: {key}"
        documented[key] = frozenset(Phase(name) for name in names(targets))
    actual = {(phase, event.__name__): targets for (phase, event), targets in TRANSITIONS.items()}
    assert documented == actual


def test_the_table_parser_reads_cells() -> None:
    rows = table_rows("| from | event | to |\n|---|---|---|\n| `PENDING` | `Tick` | `PENDING` |\n")
    assert rows == [["`PENDING`", "`Tick`", "`PENDING`"]]


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """Every model inside ``annotation`` (through Optional, tuple, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models(arg)


def field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        many = getattr(field.annotation, "__origin__", None) is tuple
        for inner in _models(field.annotation):
            yield from field_paths(inner, f"{path}[]." if many else f"{path}.")


def test_every_plan_field_has_a_row_and_every_row_is_a_field() -> None:
    paths = set(field_paths(RolloutPlan))
    assert {"steps[].weight", "steps[].until.compared", "steps[].webhook.timeout_s"} <= paths
    rows = set(ROW.findall(section("### Reference")))
    assert paths - rows == set(), "fields with no row"
    assert rows - paths == set(), "rows naming no field"


def test_the_page_shows_the_shipped_example() -> None:
    text = section("## The plan")
    block = text[
        text.index("```yaml\n") + len("```yaml\n") : text.index(
            "```\n", text.index("```yaml\n") + 8
        )
    ]
    shipped = (resources.files("stageless") / "examples" / "rollout-plan.yaml").read_text()
    assert block == shipped


def subclasses(module: Any, base: type) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and value is not base
    }


def test_every_phase_event_and_command_is_described() -> None:
    phases = {name for row in table_rows(section("### Phases")) for name in names(row[0])}
    assert phases == {phase.value for phase in Phase}
    described = {name for row in table_rows(section("### Events")) for name in names(row[0])}
    assert described == subclasses(events, events.Event)
    described = {name for row in table_rows(section("### Commands")) for name in names(row[0])}
    assert described == subclasses(commands, commands.Command)
