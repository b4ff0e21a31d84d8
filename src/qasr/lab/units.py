"""Byte sizes for people: parse "64 KiB" / "1.5MB" / "4096", and print bytes back readably.

Thresholds and limits reach the lab from command lines and config files, and reports show slopes
of a few KiB next to peaks of several GiB, so both directions live here once. Decimal prefixes
(kB, MB, GB) mean powers of 1000 and binary ones (KiB, MiB, GiB) powers of 1024, as in IEC 80000-13:
"1MB" is 1,000,000 bytes and "1 MiB" is 1,048,576. A bare "K"/"M"/"G" is read as binary, because
that is what ``ls -h``, ``free -h`` and most memory tools mean by it.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_size", "format_bytes", "format_rate", "UNITS"]

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

#: Every unit spelling accepted by :func:`parse_size`, lower-cased, with its size in bytes.
UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "k": KIB,
    "m": MIB,
    "g": GIB,
    "t": TIB,
    "p": 1024**5,
    "kib": KIB,
    "mib": MIB,
    "gib": GIB,
    "tib": TIB,
    "pib": 1024**5,
}

_SIZE_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
_BINARY_STEPS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_DECIMAL_STEPS = ("B", "kB", "MB", "GB", "TB", "PB")


def parse_size(text: str | int, *, allow_negative: bool = False) -> int:
    """Return the number of bytes that ``text`` ("64 KiB", "1.5MB", "4096", "2g") stands for.

    Integers pass through. Fractions are rounded to the nearest byte ("1.5 KiB" is 1536). Units are
    case-insensitive. Negative sizes are refused unless ``allow_negative`` (slopes can be negative;
    limits cannot), and anything unparseable raises ``ValueError`` naming the accepted units.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a byte size: {text!r}")
    if isinstance(text, int):
        value: float = text
        factor = 1
    else:
        if not isinstance(text, str):
            raise ValueError(f"not a byte size: {text!r} (expected a string such as '64 KiB')")
        match = _SIZE_RE.match(text)
        if match is None:
            raise ValueError(
                f"not a byte size: {text!r}; write a number with an optional unit, "
                "e.g. '4096', '64 KiB', '1.5 MB', '2G'"
            )
        number, unit = match.groups()
        try:
            factor = UNITS[unit.lower()]
        except KeyError:
            raise ValueError(
                f"unknown size unit {unit!r} in {text!r}; use B, kB/MB/GB/TB (powers of 1000) "
                "or KiB/MiB/GiB/TiB (powers of 1024; bare K/M/G mean the same)"
            ) from None
        value = float(number)
    total = value * factor
    if not math.isfinite(total):
        raise ValueError(f"byte size out of range: {text!r}")
    if total < 0 and not allow_negative:
        raise ValueError(f"byte size must not be negative: {text!r}")
    return int(round(total))


def format_bytes(n: float | int | None, *, precision: int = 1, binary: bool = True) -> str:
    """Format a byte count for people: 65536 -> "64 KiB", 1536 -> "1.5 KiB", -3145728 -> "-3 MiB".

    ``precision`` is the number of decimals kept before trailing zeros are trimmed, so the output
    parses back with :func:`parse_size` to within half a unit of the last shown digit. ``None``
    (a reading that was unavailable) prints as "n/a" so reports never crash on a missing metric.
    """
    if n is None:
        return "n/a"
    if isinstance(n, float) and not math.isfinite(n):
        return str(n)
    base = 1024 if binary else 1000
    steps = _BINARY_STEPS if binary else _DECIMAL_STEPS
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    index = 0
    while index < len(steps) - 1 and round(value, precision) >= base:
        value /= base
        index += 1
    if index == 0:
        text = str(int(round(value)))
    else:
        text = f"{value:.{precision}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    if text == "0":
        sign = ""
    return f"{sign}{text} {steps[index]}"


def format_rate(n: float | None, *, precision: int = 1) -> str:
    """Format a slope in bytes per iteration, always signed ("+1 MiB/iter", "-12 KiB/iter")."""
    if n is None:
        return "n/a"
    text = format_bytes(n, precision=precision)
    if not text.startswith("-") and text[0].isdigit() and not text.startswith("0 "):
        text = "+" + text
    return f"{text}/iter"
