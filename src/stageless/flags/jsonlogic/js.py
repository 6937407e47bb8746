"""JavaScript value semantics, as json-logic-js inherits them, over JSON-shaped Python values.

JSON Logic's reference implementation is JavaScript, so its rules mean what JavaScript's
operators do: ``{"==": [1, "1"]}`` is true, ``{"<": ["10", 9]}`` compares numbers, ``[1, 2]``
turns into ``"1,2"`` when compared with a string. This module implements those coercions by
hand because no Python library does (they are small ECMAScript algorithms: ToNumber,
parseFloat, Number::toString, ToPrimitive, IsLooselyEqual, IsStrictlyEqual, the abstract
relational comparison).

Value mapping: ``None`` is ``null`` (and ``undefined``), ``bool`` is Boolean (never a number,
although Python's ``True == 1``), ``int`` and ``float`` are Number, ``str`` is String, ``list``
and ``tuple`` are Array, anything else (``dict`` above all) is an Object. NaN is a float NaN here;
operators turn results that are not finite into ``None``, JSON having no NaN or Infinity.

Walks over nested data (turning arrays into strings) are bounded: nesting deeper than
``Limits.max_data_depth`` or more than ``Limits.max_array_length`` array elements in all
raises :class:`LimitError`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from stageless.flags.jsonlogic.compiler import LimitError, Limits

NAN = math.nan
MAX_SAFE_INTEGER = 2**53
"""Integers up to this magnitude are exact in a JavaScript Number; beyond, they are doubles."""

OBJECT_STRING = "[object Object]"

DEFAULT_LIMITS = Limits()

# ECMAScript WhiteSpace and LineTerminator (StrWhiteSpaceChar), which Number() and parseFloat()
# strip; Python's str.strip() uses a different set.
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_RADIX = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}
_RADIX_DIGITS = {
    16: re.compile(r"[0-9a-fA-F]+"),
    8: re.compile(r"[0-7]+"),
    2: re.compile(r"[01]+"),
}


def is_array(value: Any) -> bool:
    """True for a JavaScript Array (a list or a tuple)."""
    return type(value) is list or isinstance(value, list | tuple)


def is_number(value: Any) -> bool:
    """True for a JavaScript Number (an int or float that is not a bool)."""
    t = type(value)
    if t is int or t is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_safe_number(value: Any) -> bool:
    """True for an int or float (not a bool) of magnitude below 2**53.

    Python compares such a constant with any int or float exactly as JavaScript compares the
    two Numbers, so a compiled rule may use Python's ``==`` and ``<`` directly.
    """
    t = type(value)
    return (t is int or t is float) and -MAX_SAFE_INTEGER < value < MAX_SAFE_INTEGER


def truthy(value: Any) -> bool:
    """JSON Logic truthiness: JavaScript's, except that an empty array is falsy.

    Falsy: ``null``, ``false``, ``0``, NaN, ``""``, ``[]``. Truthy: everything else, including
    ``"0"``, ``[0]`` and ``{}``.
    """
    if value is True:
        return True
    if value is None or value is False:
        return False
    t = type(value)
    if t is str or t is list:
        return len(value) > 0
    if t is int:
        return bool(value != 0)
    if t is float:
        return bool(value != 0 and value == value)  # NaN is falsy
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    if isinstance(value, int | float):
        return value != 0 and value == value
    return True  # objects, even empty ones


def _js_number(value: int | float) -> int | float:
    """An int or float as JavaScript holds it: big integers become doubles."""
    if type(value) is not float and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def string_to_number(text: str) -> int | float:
    """ECMAScript StringToNumber: ``" 12 "`` is 12, ``""`` is 0, ``"0x1A"`` is 26, ``"1a"`` NaN."""
    text = text.strip(_JS_WHITESPACE)
    if not text:
        return 0
    if _INTEGER.fullmatch(text):
        return _js_number(int(text))
    if _DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    radix = _RADIX.get(text[:2])
    if radix is not None and _RADIX_DIGITS[radix].fullmatch(text, 2):
        return _js_number(int(text[2:], radix))
    return NAN


def to_number(value: Any, limits: Limits = DEFAULT_LIMITS) -> int | float:
    """ECMAScript ToNumber: ``null`` is 0, ``true`` 1, ``[]`` 0, ``["5"]`` 5, ``{}`` NaN."""
    t = type(value)
    if t is int or t is float:
        return _js_number(value)
    if t is str:
        return string_to_number(value)
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int | float):
        return _js_number(value)
    if isinstance(value, str):
        return string_to_number(str(value))
    if is_array(value):
        return string_to_number(to_string(value, limits))
    return NAN


def parse_float(value: Any, limits: Limits = DEFAULT_LIMITS) -> int | float:
    """JavaScript ``parseFloat(value)``: the longest decimal prefix of ``String(value)``, else NaN.

    ``"12px"`` is 12, ``"0x10"`` is 0, ``" .5e1z"`` is 5, ``true``, ``null`` and ``""`` are NaN.
    """
    t = type(value)
    if t is int or t is float:
        return _js_number(value)
    text = value if t is str else to_string(value, limits)
    match = _DECIMAL.match(text.lstrip(_JS_WHITESPACE))
    if match is None:
        return NAN
    literal = match.group()
    if _INTEGER.fullmatch(literal):
        return _js_number(int(literal))
    return float(literal.replace("Infinity", "inf"))


def number_to_string(value: int | float) -> str:
    """ECMAScript Number::toString: ``1.0`` is ``"1"``, ``1e21`` is ``"1e+21"``, NaN ``"NaN"``."""
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(value)
    if type(value) is not float and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(int(value))  # an int subclass
    number = _js_number(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    # Python's repr gives the shortest digits that round-trip, as ECMAScript requires; only the
    # layout (where the point goes, when to switch to exponent form) differs.
    text = repr(abs(float(number)))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(stripped))
    digits = stripped.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        body = digits + "0" * (point - count)
    elif 0 < point <= 21:
        body = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        body = "0." + "0" * -point + digits
    else:
        power = point - 1
        head = digits[0] + (f".{digits[1:]}" if count > 1 else "")
        body = f"{head}e{'+' if power >= 0 else '-'}{abs(power)}"
    return "-" + body if number < 0 else body


def to_string(value: Any, limits: Limits = DEFAULT_LIMITS) -> str:
    """JavaScript ``String(value)``: ``null`` is ``"null"``, arrays join with ``","`` (their
    ``null`` items become empty), objects are ``"[object Object]"``.

    Raises :class:`LimitError` for arrays nested deeper than ``limits.max_data_depth`` or
    holding more than ``limits.max_array_length`` elements in all.
    """
    t = type(value)
    if t is str:
        return str(value)
    if t is int or t is float:
        return number_to_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _to_string_slow(value, limits)


def _to_string_slow(value: Any, limits: Limits) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int | float):
        return number_to_string(value)
    if not is_array(value):
        return OBJECT_STRING
    return _array_to_string(value, limits)


def _array_to_string(value: Any, limits: Limits) -> str:
    """Join nested arrays with an explicit stack, so no depth limit can overflow Python's."""
    budget = limits.max_array_length - len(value)
    if budget < 0:
        raise LimitError("array too large to convert to a string")
    stack: list[tuple[Any, list[str]]] = [(iter(value), [])]
    while True:
        items, parts = stack[-1]
        for item in items:
            t = type(item)
            if t is str:
                parts.append(item)
            elif item is None:
                parts.append("")
            elif t is int or t is float:
                parts.append(number_to_string(item))
            elif is_array(item):
                if len(stack) >= limits.max_data_depth:
                    raise LimitError("array nested too deeply to convert to a string")
                budget -= len(item)
                if budget < 0:
                    raise LimitError("array too large to convert to a string")
                stack.append((iter(item), []))
                break
            else:
                parts.append(_to_string_slow(item, limits))
        else:
            stack.pop()
            text = ",".join(parts)
            if not stack:
                return text
            stack[-1][1].append(text)


def join_item(value: Any, limits: Limits = DEFAULT_LIMITS) -> str:
    """An item as ``Array.prototype.join`` writes it: like ``String()`` but ``null`` is empty."""
    if value is None:
        return ""
    return to_string(value, limits)


def to_primitive(value: Any, limits: Limits = DEFAULT_LIMITS) -> Any:
    """ECMAScript ToPrimitive for JSON values: arrays and objects become strings."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return _js_number(value)
    if is_array(value):
        return to_string(value, limits)
    return OBJECT_STRING


def strict_equals(a: Any, b: Any) -> bool:
    """JavaScript ``a === b``: same type and value; arrays and objects only equal themselves.

    ``True`` is not ``1`` (unlike Python), ``1`` is ``1.0``, NaN equals nothing, and integers
    past 2**53 compare as the doubles JavaScript would hold.
    """
    ta = type(a)
    tb = type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return _numbers_equal(a, b)
    if ta is tb:
        if ta is str or ta is bool or a is None:
            return bool(a == b)
        return a is b
    if ta in _PLAIN or tb in _PLAIN:
        # Different plain JSON types, or a plain type and a subclass of one.
        return _strict_slow(a, b)
    return a is b


def _numbers_equal(a: int | float, b: int | float) -> bool:
    if -MAX_SAFE_INTEGER <= a <= MAX_SAFE_INTEGER and -MAX_SAFE_INTEGER <= b <= MAX_SAFE_INTEGER:
        return bool(a == b)
    return bool(_js_number(a) == _js_number(b))


_PLAIN = frozenset({str, int, float, bool, type(None), list, dict})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "object"


def _strict_slow(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "object":
        return a is b
    if kind == "boolean":
        return bool(a) is bool(b)
    if kind == "number":
        return _numbers_equal(a, b)
    return bool(a == b)


def loose_equals(a: Any, b: Any, limits: Limits = DEFAULT_LIMITS) -> bool:
    """JavaScript ``a == b`` (IsLooselyEqual).

    ``1 == "1"``, ``0 == false``, ``null == null`` and ``[1] == 1`` are true; ``null == 0``,
    ``null == false`` and ``[1] == [1]`` (two different arrays) are false.
    """
    ka = _kind(a)
    kb = _kind(b)
    if ka == kb:
        return strict_equals(a, b) if ka != "boolean" else bool(a) is bool(b)
    if ka == "null" or kb == "null":
        return False
    if ka == "boolean":
        return loose_equals(1 if a else 0, b, limits)
    if kb == "boolean":
        return loose_equals(a, 1 if b else 0, limits)
    if ka == "object":
        return loose_equals(to_primitive(a, limits), b, limits)
    if kb == "object":
        return loose_equals(a, to_primitive(b, limits), limits)
    # One number, one string.
    return _numbers_equal(to_number(a), to_number(b))


def _utf16(text: str) -> bytes:
    # JavaScript orders strings by UTF-16 code units, Python by code points; they differ only
    # when characters above U+FFFF meet characters in U+E000…U+FFFF.
    return text.encode("utf-16-be", "surrogatepass")


def _operands(a: Any, b: Any, limits: Limits) -> tuple[Any, Any] | None:
    """The comparable pair of the abstract relational comparison, or None if NaN is involved."""
    pa = to_primitive(a, limits)
    pb = to_primitive(b, limits)
    if type(pa) is str and type(pb) is str:
        if pa.isascii() and pb.isascii():
            return pa, pb
        return _utf16(pa), _utf16(pb)
    x = to_number(pa)
    y = to_number(pb)
    if x != x or y != y:
        return None
    return x, y


def less_than(a: Any, b: Any, limits: Limits = DEFAULT_LIMITS) -> bool:
    """JavaScript ``a < b``: two strings compare as strings, anything else as numbers."""
    pair = _operands(a, b, limits)
    return pair is not None and bool(pair[0] < pair[1])


def less_equal(a: Any, b: Any, limits: Limits = DEFAULT_LIMITS) -> bool:
    """JavaScript ``a <= b`` (false when either side is NaN)."""
    pair = _operands(a, b, limits)
    return pair is not None and bool(pair[0] <= pair[1])


def greater_than(a: Any, b: Any, limits: Limits = DEFAULT_LIMITS) -> bool:
    """JavaScript ``a > b``."""
    pair = _operands(a, b, limits)
    return pair is not None and bool(pair[0] > pair[1])


def greater_equal(a: Any, b: Any, limits: Limits = DEFAULT_LIMITS) -> bool:
    """JavaScript ``a >= b``."""
    pair = _operands(a, b, limits)
    return pair is not None and bool(pair[0] >= pair[1])


def utf16_length(text: str) -> int:
    """A string's JavaScript ``length``: UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for char in text if char > "\uffff")


def utf16_slice(text: str, start: int, end: int) -> str:
    """``text.substring(start, end)`` in UTF-16 code units (0 <= start <= end <= length)."""
    if text.isascii() or utf16_length(text) == len(text):
        return text[start:end]
    units = _utf16(text)[2 * start : 2 * end]
    return units.decode("utf-16-be", "surrogatepass")


def finite_or_none(value: int | float) -> int | float | None:
    """An arithmetic result as JSON can carry it: NaN and ±Infinity become ``None``."""
    if type(value) is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        value = _js_number(value)
    if value - value == 0:  # false for NaN and ±Infinity
        return value
    return None
