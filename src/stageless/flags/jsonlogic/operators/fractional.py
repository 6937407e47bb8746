"""flagd's ``fractional`` operator: deterministic percentage splits, bit-exact with flagd.

``{"fractional": [<bucketing expression>?, [variant, weight?], ...]}``

* The first argument is the bucketing expression unless it is an array literal (a bucket). In
  v2 it must evaluate to a string; in v3 to a string, number, boolean or object. Anything else
  (``null``, an array) makes the operator return ``null``.
* Without a bucketing expression (the shorthand) the unit is the targeting key, which must be
  a non-empty string: v2 hashes ``flagKey + targetingKey``, v3 the CBOR array
  ``[flagKey, targetingKey]``.
* Weights are integers (default 1; a whole float counts, ``null`` means 1), negatives clamp to
  0, their sum must be 1 … 2,147,483,647. A variant is a string, boolean, number or ``null``.
  Variants and weights may be JSON Logic expressions, evaluated on every call.
* Bad input yields ``null``, never an exception (flagd #1874); in v3 an object nested deeper
  than ``Limits.max_data_depth`` raises :class:`LimitError`, like every data walk.

Constant buckets are precomputed at compile time, so the hot path is one lookup of the unit,
one murmur3 call and one bisect over hash thresholds
(:func:`stageless.flags.bucketing.hash_thresholds`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from stageless.flags.bucketing import (
    MAX_TOTAL_WEIGHT,
    TooDeepError,
    assign,
    cbor_text,
    cumulative,
    hash_thresholds,
    murmur3_32,
    v2_hash,
    v3_hash,
)
from stageless.flags.jsonlogic.compiler import Compiler, Evaluator, LimitError, contains_logic
from stageless.flags.jsonlogic.operators.fractional_fast import fused
from stageless.flags.jsonlogic.operators.fractional_unit import string_source

Hasher = Callable[[Any], "int | None"]
"""Turns the data into the unit's unsigned 32-bit hash, or None when it cannot be bucketed."""

Split = tuple[tuple[Any, ...], tuple[int, ...]]
"""Variants and their cumulative weights."""

_INVALID = -1
_SHORTHAND_PATH = ("targetingKey",)
_SHORTHAND: Any = object()  # marks "no bucketing expression" (``null`` is an expression)


def compile_fractional(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``fractional`` (see the module docstring)."""
    if not args:
        return _null
    if type(args[0]) is list:
        expression = _SHORTHAND
        first_bucket = 0
        hasher = _shorthand_hasher(compiler)
    else:
        expression = args[0]
        first_bucket = 1
        evaluate = compiler.compile(expression, f"{path}[0]")
        hasher = _expression_hasher(compiler, evaluate)
    raw_buckets = args[first_bucket:]

    if all(type(raw) is list and not contains_logic(raw) for raw in raw_buckets):
        split = parse_split(raw_buckets)
        if split is None:
            return _null
        fused = _fused(compiler, expression, hasher, split)
        return fused if fused is not None else _static(hasher, split)
    buckets = [
        compiler.compile(raw, f"{path}[{first_bucket + i}]") for i, raw in enumerate(raw_buckets)
    ]
    return _dynamic(hasher, buckets)


def _null(_data: Any) -> None:
    return None


def parse_split(entries: list[Any]) -> Split | None:
    """Variants and cumulative weights from evaluated buckets, or None if any is invalid."""
    variants: list[Any] = []
    weights: list[int] = []
    for entry in entries:
        if type(entry) is not list or not entry:
            return None
        variant = entry[0]
        if variant is not None and type(variant) not in (str, bool, int, float):
            return None
        weight = _weight(entry[1]) if len(entry) > 1 else 1
        if weight == _INVALID:
            return None
        variants.append(variant)
        weights.append(weight)
    if not weights:
        return None
    ends = cumulative(weights)
    if not 0 < ends[-1] <= MAX_TOTAL_WEIGHT:
        return None
    return tuple(variants), ends


def _weight(raw: Any) -> int:
    # flagd decodes JSON numbers as float64: a whole number is an integer weight and null
    # means the default 1; anything else (a fraction, a string, a boolean) is invalid.
    # Negative weights are clamped to 0 later, so -1 is free to mark invalid ones.
    kind = type(raw)
    if kind is int:
        return max(int(raw), 0)
    if kind is float:
        return max(int(raw), 0) if raw.is_integer() else _INVALID
    if raw is None:
        return 1
    return _INVALID


def _static(hasher: Hasher, split: Split) -> Evaluator:
    variants, ends = split
    thresholds = hash_thresholds(ends)

    def fractional(data: Any) -> Any:
        hash_value = hasher(data)
        if hash_value is None:
            return None
        return variants[bisect_right(thresholds, hash_value)]

    return fractional


def _dynamic(hasher: Hasher, buckets: list[Evaluator]) -> Evaluator:
    def fractional(data: Any) -> Any:
        split = parse_split([bucket(data) for bucket in buckets])
        if split is None:
            return None
        hash_value = hasher(data)
        if hash_value is None:
            return None
        variants, ends = split
        return assign(hash_value, ends, variants)

    return fractional


# --- the unit's hash ------------------------------------------------------------------------


def _targeting_key_of(data: Any) -> str | None:
    key = data.get("targetingKey") if type(data) is dict else None
    return key if type(key) is str and key else None


def _v2_or_none(value: Any) -> int | None:
    return v2_hash(value) if type(value) is str else None


def _shorthand_hasher(compiler: Compiler) -> Hasher:
    # Like ``$flagd.flagKey``, the flag key comes from the options, never from the caller's
    # data; a rule compiled without one (``apply`` on its own) uses "" as flagd would.
    flag_key = compiler.options.flag_key or ""
    if compiler.options.fractional_version == 2:
        return lambda data: _v2_or_none(_prefixed(flag_key, _targeting_key_of(data)))
    v3_prefix = b"\x82" + cbor_text(flag_key)  # a CBOR array of two items, the flag key first

    def v3_shorthand(data: Any) -> int | None:
        targeting_key = _targeting_key_of(data)
        if targeting_key is None:
            return None
        return murmur3_32(v3_prefix + cbor_text(targeting_key))

    return v3_shorthand


def _prefixed(prefix: str, value: str | None) -> str | None:
    return None if value is None else prefix + value


def _expression_hasher(compiler: Compiler, evaluate: Evaluator) -> Hasher:
    if compiler.options.fractional_version == 2:
        return lambda data: _v2_or_none(evaluate(data))
    max_depth = compiler.options.limits.max_data_depth

    def v3_expression(data: Any) -> int | None:
        try:
            return v3_hash(evaluate(data), max_depth=max_depth)
        except TooDeepError as exc:
            raise LimitError(
                f"fractional: the bucketing value is nested deeper than {max_depth} levels"
            ) from exc

    return v3_expression


def _fused(compiler: Compiler, expression: Any, hasher: Hasher, split: Split) -> Evaluator | None:
    """The fused fast path (:mod:`.fractional_fast`) if the unit is a string read from the data."""
    version = compiler.options.fractional_version
    if expression is _SHORTHAND:
        flag_key = compiler.options.flag_key or ""
        return fused(
            flag_key, _SHORTHAND_PATH, version=version, shorthand=True, hasher=hasher, split=split
        )
    source = string_source(compiler, expression)
    if source is None:
        return None
    return fused(
        source.prefix, source.path, version=version, shorthand=False, hasher=hasher, split=split
    )
