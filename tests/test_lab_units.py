"""qasr.lab.units: byte sizes parse exactly and print readably."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qasr.lab.units import format_bytes, format_rate, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64 KiB", 65536),
        ("64KiB", 65536),
        ("64 kib", 65536),
        ("1MB", 1_000_000),
        ("1 mb", 1_000_000),
        ("1.5 MiB", 1_572_864),
        ("1.5MB", 1_500_000),
        ("4096", 4096),
        ("4096 B", 4096),
        ("2G", 2 * 1024**3),
        ("1 GiB", 1024**3),
        ("1 kB", 1000),
        (".5 KiB", 512),
        ("  16 KiB  ", 16384),
        (12345, 12345),
    ],
)
def test_parse_size_accepts_decimal_and_binary_units(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "abc", "64 KiBs", "1.2.3 MB", "MB", "12 parsecs", "1e999 GiB"])
def test_parse_size_rejects_garbage_with_a_clear_message(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(bad)
    message = str(info.value)
    assert repr(bad) in message or "out of range" in message
    assert "KiB" in message or "range" in message or "unit" in message


def test_parse_size_names_the_unknown_unit() -> None:
    with pytest.raises(ValueError, match="unknown size unit 'parsecs'"):
        parse_size("12 parsecs")


def test_negative_sizes_need_permission() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size("-1 MiB")
    assert parse_size("-1 MiB", allow_negative=True) == -(1 << 20)


@pytest.mark.parametrize("bad", [None, 1.5, True, [1]])
def test_parse_size_rejects_non_strings(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1000, "1000 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (65536, "64 KiB"),
        (1 << 20, "1 MiB"),
        (-(3 << 20), "-3 MiB"),
        (300 * (1 << 20), "300 MiB"),
        (5 * (1 << 30), "5 GiB"),
        (None, "n/a"),
    ],
)
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


def test_format_bytes_decimal_and_rounding_carry() -> None:
    assert format_bytes(1_500_000, binary=False) == "1.5 MB"
    # 1023.96 KiB rounds to 1024.0 KiB at one decimal: it must carry into MiB, not print "1024 KiB".
    assert format_bytes(1024 * 1024 - 40) == "1 MiB"


def test_format_rate_is_signed() -> None:
    assert format_rate(1 << 20) == "+1 MiB/iter"
    assert format_rate(-12 * 1024) == "-12 KiB/iter"
    assert format_rate(0) == "0 B/iter"
    assert format_rate(None) == "n/a"


@pytest.mark.parametrize("unit", ["KiB", "MiB", "GiB", "kB", "MB", "GB", "B"])
@pytest.mark.parametrize("k", [1, 3, 64, 999])
def test_round_trip_of_whole_units(unit: str, k: int) -> None:
    n = parse_size(f"{k} {unit}")
    binary = unit.endswith("iB") or unit == "B"
    assert parse_size(format_bytes(n, binary=binary)) == n


@given(st.integers(min_value=0, max_value=1 << 50))
def test_round_trip_within_display_precision(n: int) -> None:
    text = format_bytes(n, precision=3)
    back = parse_size(text)
    # Three decimals of the chosen unit (at most 0.05% of n, the unit being <= n) plus the rounding
    # of the parsed value to whole bytes (0.5): 1088 B shows as "1.062 KiB", which parses to 1087 B.
    assert abs(back - n) <= 0.0005 * n + 0.5
