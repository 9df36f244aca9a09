"""JSON numbers read exactly as correctionlib reads them.

correctionlib parses documents with rapidjson in its default (not full-precision)
mode, which is not correctly rounded: ``-1.7453292519943293`` (an edge in the CMS jet
veto maps) becomes a double one ulp away from Python's ``float()``. A value exactly on
such an edge then falls in a different bin. To equal correctionlib bit for bit we
parse floats with the same arithmetic; no library exposes rapidjson's normal-precision
algorithm, hence this re-implementation of its steps (rapidjson ``Reader::ParseNumber``
and ``internal::StrtodNormalPrecision``).
"""

from __future__ import annotations

_MAX_FAST_SIGNIFICAND = (1 << 53) - 1
_UINT64_LIMIT_PLUS = 0x1999999999999999  # next digit would overflow 2^64 - 1
_UINT64_LIMIT_MINUS = 0x0CCCCCCCCCCCCCCC  # next digit would overflow 2^63
_POW10 = [float(f"1e{n}") for n in range(309)]  # correctly rounded, as C++ literals


def _fast_path(significand: float, exponent: int) -> float:
    if exponent < -308:
        return 0.0
    if exponent >= 0:
        return significand * _POW10[exponent]
    return significand / _POW10[-exponent]


def _normal_precision(value: float, exponent: int) -> float:
    if exponent < -308:
        return _fast_path(_fast_path(value, -308), exponent + 308)
    return _fast_path(value, exponent)


def rapidjson_float(text: str) -> float:
    """The double rapidjson (normal precision) gives for a JSON number with ``.``/``e``."""
    if len(text) <= 16 and "e" not in text and "E" not in text:
        # <= 15 digits, <= 15 decimals: rapidjson divides an exact significand by an
        # exact power of ten, one correctly rounded operation, the same as float().
        return float(text)
    mantissa, _, exponent_text = text.replace("E", "e").partition("e")
    integer_part, _, fraction = mantissa.partition(".")
    digits = (integer_part + fraction).lstrip("-")
    # Every digit fits the exact 64-bit significand unless the significand passed
    # 2^53 - 1 before the last digit; then it is one rounding to double and one
    # correctly rounded division.
    if (
        not exponent_text
        and len(digits) <= 19
        and len(integer_part) <= 18
        and int(digits[:-1] or "0") <= _MAX_FAST_SIGNIFICAND
    ):
        value = float(int(digits)) / _POW10[len(fraction)]
        return -value if text.startswith("-") else value
    significant = digits.lstrip("0")
    exponent = int(exponent_text) if exponent_text else 0
    if len(significant) <= 15 and -22 <= exponent - len(fraction) <= 22:
        return float(text)
    return _slow(text)


def _slow(text: str) -> float:
    position = 0
    minus = text.startswith("-")
    if minus:
        position = 1
    limit = _UINT64_LIMIT_MINUS if minus else _UINT64_LIMIT_PLUS
    last_digit = "8" if minus else "5"
    significand = 0
    significant_digits = 0
    value = 0.0
    use_double = False
    n = len(text)

    def is_digit(k: int) -> bool:
        return k < n and "0" <= text[k] <= "9"

    # integer part: exact while it fits in uint64 (int64 magnitude when negative)
    if text[position] != "0":
        significand = int(text[position])
        position += 1
        while is_digit(position):
            if significand >= limit and (significand != limit or text[position] > last_digit):
                value = float(significand)
                use_double = True
                break
            significand = significand * 10 + int(text[position])
            significant_digits += 1
            position += 1
        while use_double and is_digit(position):
            value = value * 10 + int(text[position])
            position += 1
    else:
        position += 1

    fraction_exponent = 0
    if position < n and text[position] == ".":
        position += 1
        if not use_double:
            while is_digit(position) and significand <= _MAX_FAST_SIGNIFICAND:
                significand = significand * 10 + int(text[position])
                fraction_exponent -= 1
                if significand != 0:
                    significant_digits += 1
                position += 1
            value = float(significand)
            use_double = True
        while is_digit(position):
            if significant_digits < 17:
                value = value * 10.0 + int(text[position])
                fraction_exponent -= 1
                if value > 0.0:
                    significant_digits += 1
            position += 1

    exponent = 0
    if position < n and text[position] in "eE":
        if not use_double:
            value = float(significand)
        exponent = int(text[position + 1 :])
    value = _normal_precision(value, exponent + fraction_exponent)
    return -value if minus else value
