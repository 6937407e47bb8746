"""The compiled flag set and its evaluation.

Everything an evaluation can return is built when the document loads: one immutable
:class:`~stageless.flags.Resolution` per (requested type, variant, reason). The happy path is a
dictionary lookup for the flag, one call of its compiled targeting and a dictionary lookup for
the variant; it allocates nothing and copies nothing (the caller's context is passed to the
rule as it is).

Never raises: :meth:`FlagSet.evaluate` is the one documented boundary where any exception from
the targeting (a ``LimitError``, a bug, even a ``RecursionError``) becomes a resolution with
reason ERROR.

Context limits (see docs/flags.md): the context must be a mapping (``None`` means empty) with at
most :data:`DEFAULT_MAX_CONTEXT_KEYS` top-level keys, checked on every targeted evaluation in
constant time. Nested values are bounded where a rule reads them: the JSON Logic operators stop
at :class:`~stageless.flags.jsonlogic.Limits` (``max_data_depth`` levels of nesting,
``max_array_length`` elements) with a ``LimitError``. Either limit yields INVALID_CONTEXT.
Walking a whole context up front would cost more than the evaluation itself, and parts of the
context that no rule reads cannot make an evaluation slow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stageless.errors import Issue
from stageless.flags.jsonlogic import (
    PROGRAM_RULES,
    Evaluator,
    LimitError,
    Options,
    RuleError,
    compile_program,
)
from stageless.flags.model import Flag, FlagState, accepts, convert
from stageless.flags.resolution import (
    EMPTY_METADATA,
    ErrorCode,
    FlagType,
    Metadata,
    Reason,
    Resolution,
)
from stageless.flags.sharing import sharing_key

DEFAULT_MAX_CONTEXT_KEYS = 1_000
"""At most this many top-level keys in an evaluation context."""

REQUESTED_TYPES: tuple[FlagType | None, ...] = (None, *FlagType)
"""Every value of ``flag_type`` that :meth:`FlagSet.evaluate` accepts (``None``: untyped)."""

_EMPTY_CONTEXT: dict[str, Any] = {}  # shared; compiled rules never write to their data
_UNSET: Any = object()  # no result yet
NO_RESULT: Any = object()
"""In :meth:`FlagSet.targeting_results`: this flag's rule failed or it has none."""

__all__ = [
    "DEFAULT_MAX_CONTEXT_KEYS",
    "NO_RESULT",
    "REQUESTED_TYPES",
    "FlagSet",
    "TargetingProgram",
]


class _ContextError(Exception):
    """The context is not one the engine evaluates (not a mapping, too many keys)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything precomputed for one flag.

    ``fixed`` is the answer for each requested type when the flag needs no targeting (static,
    disabled, or uncompilable targeting); otherwise ``rule`` is the compiled targeting,
    ``matched[t][variant]`` the TARGETING_MATCH resolution (or TYPE_MISMATCH) and
    ``default[t]`` the resolution for "targeting returned null". ``shared``: other flags of
    the set carry the same ``rule`` object (:mod:`stageless.flags.sharing`), so
    ``evaluate_many`` runs it once per context for all of them. ``options``: the compile
    options ``rule`` was made with from ``flag.targeting`` (``targeting_program`` compiles the
    rule again with them), ``None`` when unknown.
    """

    flag: Flag
    rule: Evaluator | None
    fixed: Mapping[FlagType | None, Resolution]
    matched: Mapping[FlagType | None, Mapping[str, Resolution]]
    default: Mapping[FlagType | None, Resolution]
    shared: bool = False
    options: Options | None = None  # what ``rule`` was compiled with from flag.targeting


def _error(flag: Flag, code: ErrorCode, message: str) -> Resolution:
    return Resolution(flag.key, None, None, Reason.ERROR, code, message, flag.metadata)


def _variant(
    flag: Flag, name: str | None, reason: Reason, requested: FlagType | None
) -> Resolution:
    """The resolution serving variant ``name`` (no variant: the caller's default) for a call
    of type ``requested``."""
    if name is None:
        return Resolution(flag.key, None, None, reason, None, None, flag.metadata)
    if requested is not None and not accepts(flag.flag_type, flag.variants, requested):
        message = f"flag {flag.key!r} is of type {flag.flag_type}, requested {requested}"
        return _error(flag, ErrorCode.TYPE_MISMATCH, message)
    value = convert(flag.variants[name], requested)
    return Resolution(flag.key, value, name, reason, None, None, flag.metadata)


def plan_flag(
    flag: Flag, rule: Evaluator | None, *, shared: bool = False, options: Options | None = None
) -> _Plan:
    """Precompute every resolution ``flag`` can produce (``shared``, ``options``: see
    :class:`_Plan`)."""
    fixed: dict[FlagType | None, Resolution] = {}
    matched: dict[FlagType | None, Mapping[str, Resolution]] = {}
    default: dict[FlagType | None, Resolution] = {}
    for requested in REQUESTED_TYPES:
        default[requested] = _variant(flag, flag.default_variant, Reason.DEFAULT, requested)
        matched[requested] = {
            name: _variant(flag, name, Reason.TARGETING_MATCH, requested) for name in flag.variants
        }
        if flag.state is FlagState.DISABLED:
            fixed[requested] = Resolution(
                flag.key, None, None, Reason.DISABLED, None, None, flag.metadata
            )
        elif flag.targeting_error is not None:
            fixed[requested] = _error(flag, ErrorCode.PARSE_ERROR, flag.targeting_error)
        elif flag.targeting is None:
            # No targeting: STATIC with the default variant, or DEFAULT with no value at all.
            reason = Reason.DEFAULT if flag.default_variant is None else Reason.STATIC
            fixed[requested] = _variant(flag, flag.default_variant, reason, requested)
    needs_rule = flag.state is FlagState.ENABLED and flag.targeting_error is None
    return _Plan(
        flag,
        rule if needs_rule else None,
        fixed,
        matched,
        default,
        shared and needs_rule,
        options if needs_rule else None,
    )


def _precomputed(plan: _Plan, result: Any) -> Resolution | None:
    """The shared untyped resolution of a rule ``result`` (a variant name, ``None`` for the
    default, ``True``/``False`` for variants named so), or ``None`` when there is none."""
    matched = plan.matched[None]
    if type(result) is str:
        return matched.get(result)
    if result is None:
        return plan.default[None]
    if result is True or result is False:
        return matched.get("true" if result else "false")
    return None


class FlagSet:
    """A validated, compiled, immutable set of flags. Build one with
    :func:`~stageless.flags.parse_flag_set`.

    Thread-safe and shareable: nothing in it changes after it is built; replacing flags means
    building a new set.
    """

    __slots__ = (
        "_max_keys",
        "_metadata",
        "_plans",
        "_warnings",
        "fractional_version",
        "source_name",
    )

    _plans: dict[str, _Plan]
    _metadata: Metadata
    _warnings: tuple[Issue, ...]
    _max_keys: int
    fractional_version: int
    source_name: str | None

    def __init__(
        self,
        plans: Iterable[_Plan],
        *,
        metadata: Metadata = EMPTY_METADATA,
        warnings: Iterable[Issue] = (),
        fractional_version: int = 2,
        source_name: str | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_plans", {plan.flag.key: plan for plan in plans})
        setattr_(self, "_metadata", metadata)
        setattr_(self, "_warnings", tuple(warnings))
        setattr_(self, "_max_keys", DEFAULT_MAX_CONTEXT_KEYS)
        setattr_(self, "fractional_version", fractional_version)
        setattr_(self, "source_name", source_name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"FlagSet is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        source = f" from {self.source_name!r}" if self.source_name else ""
        return f"<FlagSet{source}: {len(self._plans)} flags, {len(self._warnings)} warnings>"

    def __len__(self) -> int:
        return len(self._plans)

    def __contains__(self, key: object) -> bool:
        return key in self._plans

    def __iter__(self) -> Iterator[str]:
        return iter(self._plans)

    def keys(self) -> KeysView[str]:
        """The flag keys, in document order."""
        return self._plans.keys()

    def flag(self, key: str) -> Flag:
        """The data of flag ``key``. Raises ``KeyError`` if there is no such flag."""
        return self._plans[key].flag

    @property
    def metadata(self) -> Metadata:
        """The flag set's own metadata (each flag's metadata is merged over it)."""
        return self._metadata

    @property
    def warnings(self) -> tuple[Issue, ...]:
        """Problems that did not stop the document from loading: flags whose targeting could
        not be compiled (they evaluate to PARSE_ERROR) and unknown keys."""
        return self._warnings

    def evaluate(
        self,
        key: str,
        context: Mapping[str, Any] | None = None,
        flag_type: FlagType | None = None,
    ) -> Resolution:
        """Resolve flag ``key`` for ``context``; never raises.

        ``context`` is the evaluation context (the targeting key under ``"targetingKey"``);
        ``flag_type`` is the type a typed call expects (TYPE_MISMATCH if the flag has another;
        a FLOAT call gets integers as floats). When the resolution has no variant (disabled,
        no default variant, error) ``value`` is ``None`` and the caller uses its own default.
        """
        try:
            plan = self._plans.get(key)
            if plan is None:
                return self._not_found(key)
            rule = plan.rule
            if rule is None:
                return plan.fixed[flag_type]
            if type(context) is not dict or len(context) > self._max_keys:
                context = self._admit(context)
            result = rule(context)
            if type(result) is str:
                found = plan.matched[flag_type].get(result)
                if found is not None:
                    return found
            elif result is None:
                return plan.default[flag_type]
            elif result is True or result is False:
                # flagd: a boolean result selects the variant named "true" / "false".
                found = plan.matched[flag_type].get("true" if result else "false")
                if found is not None:
                    return found
            return self._unexpected(plan.flag, result)
        except Exception as exc:  # the documented boundary: evaluation never raises
            return self._caught(key, exc)

    def evaluate_many(
        self, keys: Iterable[str], context: Mapping[str, Any] | None = None
    ) -> list[Resolution]:
        """Resolve each of ``keys`` for one ``context`` (untyped), in order; never raises.

        The same resolutions as ``[self.evaluate(key, context) for key in keys]``, with the
        per-call work done once: the context is admitted once (a context the engine refuses
        gives every targeted flag its INVALID_CONTEXT, as ``evaluate`` would) and the loop
        reads no attributes per flag, and a rule shared by several flags runs once. The OFREP
        bulk endpoint evaluates its targeted flags so.
        """
        if type(context) is not dict or len(context) > self._max_keys:
            try:
                context = self._admit(context)
            except _ContextError:
                return [self.evaluate(key, context) for key in keys]
        plans = self._plans
        resolutions: list[Resolution] = []
        append = resolutions.append
        results: dict[Evaluator, Any] = {}  # shared rules' results for this context
        for key in keys:
            plan = plans.get(key)
            if plan is None:
                append(self._not_found(key))
                continue
            rule = plan.rule
            if rule is None:
                append(plan.fixed[None])
                continue
            try:
                if plan.shared:
                    result = results.get(rule, _UNSET)
                    if result is _UNSET:
                        result = results[rule] = rule(context)
                else:
                    result = rule(context)
            except Exception as exc:  # the documented boundary, as in evaluate
                append(self._caught(key, exc))
                continue
            if type(result) is str:
                found = plan.matched[None].get(result)
                if found is not None:
                    append(found)
                    continue
            elif result is None:
                append(plan.default[None])
                continue
            append(self._resolved(plan, result))
        return resolutions

    def rule_of(self, key: str) -> object | None:
        """An opaque token of flag ``key``'s compiled targeting, ``None`` when it has none.

        Flags with the same token share one evaluator (:mod:`stageless.flags.sharing`): one
        :meth:`targeting_results` entry decides all of them.
        """
        plan = self._plans.get(key)
        return None if plan is None else plan.rule

    def targeting_results(
        self, keys: Sequence[str], context: Mapping[str, Any] | None
    ) -> list[Any] | None:
        """The raw result of each targeted flag's rule for ``context``, in order.

        ``NO_RESULT`` where the rule failed (the flag resolves to an error: ask
        :meth:`evaluate_many`) or the flag has no rule; ``None`` when the context is refused
        (not a mapping, too many keys). With :meth:`resolution_for`, this lets a caller that
        precomputes answers per result (the OFREP bulk endpoint) decide a group of flags that
        share a rule with one call.
        """
        if type(context) is not dict or len(context) > self._max_keys:
            try:
                context = self._admit(context)
            except _ContextError:
                return None
        plans = self._plans
        results: list[Any] = []
        append = results.append
        for key in keys:
            plan = plans.get(key)
            rule = None if plan is None else plan.rule
            if rule is None:
                append(NO_RESULT)
                continue
            try:
                append(rule(context))
            except Exception:  # evaluate_many gives the flag its error resolution
                append(NO_RESULT)
        return results

    def targeting_program(self, keys: Sequence[str]) -> TargetingProgram:
        """A function of the context that returns ``targeting_results(keys, context)`` (as a
        sequence: a tuple where the rules are compiled together).

        The rules are compiled again into one generated function per :data:`PROGRAM_RULES`
        rules, in which a sub-rule that several of them contain (by
        :func:`~stageless.flags.sharing.sharing_key`: one that cannot tell flags apart) is
        computed once per call: twenty flags that each test ``country``, an e-mail suffix and
        a fractional split on the e-mail before their own age threshold do those three tests
        once. Where a rule cannot be compiled so (a flag set built without compile options),
        the function calls each flag's evaluator, as ``targeting_results`` does.

        For a caller that evaluates the same keys for many contexts (the OFREP bulk endpoint):
        compiling costs about as much as compiling the document did (some hundreds of
        microseconds per rule), once.
        """
        if not keys:
            return _Loop(self, [])
        plans = [self._plans.get(key) for key in keys]
        rules: list[tuple[Any, Options] | None] = []
        for plan in plans:
            if plan is None or plan.rule is None:
                rules.append(None)
            elif plan.options is None or plan.flag.targeting is None:
                return _Loop(self, list(keys))
            else:
                rules.append((plan.flag.targeting, plan.options))
        try:
            programs = [
                compile_program(rules[start : start + PROGRAM_RULES], sharing_key, NO_RESULT)
                for start in range(0, len(rules), PROGRAM_RULES)
            ]
        except (RuleError, RecursionError, MemoryError):  # compiled once; not twice, then
            return _Loop(self, list(keys))
        return _Program(self, programs)

    def resolution_for(self, key: str, result: Any) -> Resolution | None:
        """The untyped resolution flag ``key`` gets when its rule returns ``result``.

        Only for results with a precomputed resolution (the shared object ``evaluate`` returns):
        a variant name, ``None`` (the default) and ``True``/``False`` when the flag has
        variants named so; ``None`` for anything else (an error resolution, built per call).
        """
        plan = self._plans.get(key)
        if plan is None or plan.rule is None:
            return None
        return _precomputed(plan, result)

    def evaluate_all(self, context: Mapping[str, Any] | None = None) -> dict[str, Resolution]:
        """Resolve every flag for ``context`` (untyped), in document order; never raises."""
        return {key: self.evaluate(key, context) for key in self._plans}

    def _resolved(self, plan: _Plan, result: Any) -> Resolution:
        """The untyped resolution for a targeting ``result`` off ``evaluate_many``'s fast path."""
        found = _precomputed(plan, result)
        return found if found is not None else self._unexpected(plan.flag, result)

    def _caught(self, key: str, exc: Exception) -> Resolution:
        """The resolution for an exception out of a targeting rule or the context check."""
        if isinstance(exc, (LimitError, _ContextError)):
            return self._failed(key, ErrorCode.INVALID_CONTEXT, str(exc))
        if isinstance(exc, RecursionError):
            return self._failed(key, ErrorCode.GENERAL, "evaluation recursed too deeply")
        return self._failed(key, ErrorCode.GENERAL, f"{type(exc).__name__}: {exc}")

    def _admit(self, context: object) -> dict[str, Any]:
        if context is None:
            return _EMPTY_CONTEXT
        if not isinstance(context, Mapping):
            raise _ContextError(
                f"the evaluation context must be a mapping, got {type(context).__name__}"
            )
        if len(context) > self._max_keys:
            raise _ContextError(
                f"the evaluation context has {len(context)} top-level keys; "
                f"the limit is {self._max_keys}"
            )
        return context if type(context) is dict else dict(context)

    def _not_found(self, key: object) -> Resolution:
        return Resolution(
            str(key),
            None,
            None,
            Reason.ERROR,
            ErrorCode.FLAG_NOT_FOUND,
            f"flag {key!r} not found",
            self._metadata,
        )

    def _failed(self, key: object, code: ErrorCode, message: str) -> Resolution:
        plan = self._plans.get(key) if isinstance(key, str) else None
        metadata = plan.flag.metadata if plan is not None else self._metadata
        return Resolution(str(key), None, None, Reason.ERROR, code, message, metadata)

    @staticmethod
    def _unexpected(flag: Flag, result: Any) -> Resolution:
        if type(result) is str or type(result) is bool:
            name = result if type(result) is str else ("true" if result else "false")
            message = (
                f"targeting returned variant {name!r}, which is not one of {list(flag.variants)}"
            )
        else:
            shown = repr(result)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            message = f"targeting returned {shown}; expected a variant name or null"
        return _error(flag, ErrorCode.GENERAL, message)


class TargetingProgram:
    """``targeting_results`` for a fixed list of flags (:meth:`FlagSet.targeting_program`)."""

    __slots__ = ()

    def __call__(self, context: Mapping[str, Any] | None) -> Sequence[Any] | None:
        raise NotImplementedError


class _Program(TargetingProgram):
    """The rules compiled together, in functions of at most ``PROGRAM_RULES`` rules."""

    __slots__ = ("_admit", "_first", "_max_keys", "_rest")

    def __init__(
        self, flags: FlagSet, programs: list[Callable[[dict[str, Any]], tuple[Any, ...]]]
    ) -> None:
        self._admit = flags._admit  # the same checks as the flag set's own
        self._max_keys = flags._max_keys
        self._first = programs[0]
        self._rest = tuple(programs[1:])  # usually none: a function holds PROGRAM_RULES rules

    def __call__(self, context: Mapping[str, Any] | None) -> Sequence[Any] | None:
        if type(context) is not dict or len(context) > self._max_keys:
            try:
                context = self._admit(context)
            except _ContextError:
                return None
        results = self._first(context)
        if self._rest:
            for program in self._rest:
                results += program(context)
        return results


class _Loop(TargetingProgram):
    """Each flag's own evaluator, one after the other."""

    __slots__ = ("_flags", "_keys")

    def __init__(self, flags: FlagSet, keys: list[str]) -> None:
        self._flags = flags
        self._keys = keys

    def __call__(self, context: Mapping[str, Any] | None) -> Sequence[Any] | None:
        return self._flags.targeting_results(self._keys, context)
