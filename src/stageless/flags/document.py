"""Load a flagd flag document into a compiled :class:`~stageless.flags.FlagSet`.

Steps: decode the text (:mod:`stageless.flags.decode`), validate the whole document
(:mod:`stageless.flags.validate`; any issue rejects it as a whole), substitute ``$ref``
(:mod:`stageless.flags.refs`), compile each flag's targeting once (to one generated Python
function where it can, :mod:`stageless.flags.jsonlogic.codegen`; flags with the same rule that
cannot tell flags apart share one evaluator, :mod:`stageless.flags.sharing`), and precompute every
resolution (:mod:`stageless.flags.evaluate`). A flag whose targeting cannot be compiled does not
reject the document: it loads with a warning and evaluates to ERROR/PARSE_ERROR, as in flagd.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.errors import Issue, ValidationError
from stageless.flags.decode import DocumentFormat, decode_document
from stageless.flags.evaluate import FlagSet, plan_flag
from stageless.flags.jsonlogic import Evaluator, Options, RuleError, compile_generated
from stageless.flags.model import Flag
from stageless.flags.refs import substitute_refs
from stageless.flags.sharing import sharing_key
from stageless.flags.validate import child, validate_document

__all__ = ["parse_flag_set"]


def _rule_path(flag_path: str, rule_path: str) -> str:
    base = child(flag_path, "targeting")
    if not rule_path:
        return base
    return f"{base}{rule_path}" if rule_path.startswith("[") else f"{base}.{rule_path}"


def _compile(
    path: str,
    flag: Flag,
    evaluators: Mapping[str, Any],
    options: Options,
    shared: dict[str, Evaluator],
) -> tuple[Flag, Evaluator | None, Issue | None]:
    """Compile ``flag``'s targeting: the flag (with ``$ref`` substituted, or with
    ``targeting_error`` set), its evaluator and the warning, if any.

    ``shared`` holds the evaluators compiled so far by :func:`sharing_key`: a flag whose rule
    is already there (and cannot tell flags apart) gets the same evaluator object.
    """
    if flag.targeting is None:
        return flag, None, None
    try:
        rule = substitute_refs(flag.targeting, evaluators)
        key = sharing_key(rule)
        found = None if key is None else shared.get(key)
        if found is not None:
            return dataclasses.replace(flag, targeting=rule), found, None
        evaluator = compile_generated(rule, options=options)
        if key is not None:
            shared[key] = evaluator
    except RuleError as exc:
        issue = Issue(_rule_path(path, exc.path), f"targeting cannot be compiled: {exc.message}")
    except RecursionError:
        issue = Issue(child(path, "targeting"), "targeting cannot be compiled: nested too deeply")
    else:
        return dataclasses.replace(flag, targeting=rule), evaluator, None
    broken = dataclasses.replace(flag, targeting_error=f"{issue.path}: {issue.message}")
    return broken, None, issue


def parse_flag_set(
    source: str | bytes | Mapping[str, Any],
    *,
    format: DocumentFormat | None = None,  # noqa: A002  # the public name the docs use
    fractional_version: Literal[2, 3] = 2,
    clock: Clock = SYSTEM_CLOCK,
    source_name: str | None = None,
) -> FlagSet:
    """Validate and compile a flagd flag document.

    Args:
        source: the document as JSON or YAML text (``str`` or UTF-8 ``bytes``), or already
            parsed (a mapping).
        format: ``"json"`` or ``"yaml"``; ``None`` guesses (JSON if the text starts with
            ``{`` or ``[``).
        fractional_version: the ``fractional`` operator's bucketing, 2 (flagd's current Go
            implementation, the default) or 3 (hashes deterministic CBOR).
        clock: the source of ``$flagd.timestamp``.
        source_name: where the document came from (a file name), for messages.

    Raises:
        ValidationError: the document does not parse or breaks the schema; ``issues`` lists
            every problem with its JSON path, e.g. ``flags.new-checkout.defaultVariant: 'blue'
            is not one of the variants ['on', 'off']``.
    """
    if fractional_version not in (2, 3):
        raise ValueError(f"fractional_version must be 2 or 3, got {fractional_version!r}")
    try:
        document = decode_document(source, format)
    except ValidationError as exc:
        raise ValidationError(exc.issues, source=source_name) from exc.__cause__
    validated, issues, warnings = validate_document(document)
    if validated is None:
        raise ValidationError(issues, source=source_name)
    compiled = []
    shared: dict[str, Evaluator] = {}
    for path, flag in validated.flags:
        options = Options(flag_key=flag.key, fractional_version=fractional_version, clock=clock)
        compiled_flag, evaluator, warning = _compile(
            path, flag, validated.evaluators, options, shared
        )
        if warning is not None:
            warnings.append(warning)
        compiled.append((compiled_flag, evaluator, options))
    carriers = Counter(id(evaluator) for _, evaluator, _ in compiled if evaluator is not None)
    plans = [
        plan_flag(
            flag,
            evaluator,
            shared=evaluator is not None and carriers[id(evaluator)] > 1,
            options=options,
        )
        for flag, evaluator, options in compiled
    ]
    return FlagSet(
        plans,
        metadata=validated.metadata,
        warnings=warnings,
        fractional_version=fractional_version,
        source_name=source_name,
    )
