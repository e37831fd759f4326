"""Byte-size parsing and formatting for `--max-size` and the tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub.cli._units import format_size, parse_size

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20}


@given(st.integers(min_value=0, max_value=10**15))
def test_plain_integers_are_bytes(n: int) -> None:
    assert parse_size(str(n)) == n


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(_UNITS)))
def test_units_multiply_in_any_case(n: int, unit: str) -> None:
    assert parse_size(f"{n}{unit}") == n * _UNITS[unit]
    assert parse_size(f"{n} {unit.lower()}") == n * _UNITS[unit]


@given(st.integers(min_value=0, max_value=2**50), st.integers(min_value=0, max_value=2**50))
def test_format_is_monotonic_and_parses_back_closely(a: int, b: int) -> None:
    small, large = sorted((a, b))
    text = format_size(large)
    parsed = parse_size(text.replace(" ", ""))
    assert abs(parsed - large) <= max(1, large // 20)  # one decimal of >= 1.0: within 5 %
    assert parse_size(format_size(small).replace(" ", "")) <= parsed


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**30, "5.0 GiB")],
)
def test_format_examples(size: int | None, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize("text", ["", "lots", "-1", "10XB", "nan", "inf", "1.5.5G", "MB"])
def test_bad_sizes_name_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid size {text!r}"):
        parse_size(text)
