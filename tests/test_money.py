"""Exact money: price strings in 元 to integer fen and back, with literal expected values."""

from __future__ import annotations

import pytest

from shopcrawl.money import MAX_FEN, PriceError, format_fen, to_fen


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0", 0),
        ("0.00", 0),
        ("0.1", 10),
        ("0.10", 10),
        ("0.09", 9),
        ("1.05", 105),
        ("19.99", 1999),
        ("0.29", 29),  # 0.29 * 100 is 28.999999999999996 as a float
        ("1.15", 115),  # 1.15 * 100 is 114.99999999999999 as a float
        ("007.50", 750),
        (" 25.80 ", 2580),
        ("100000000", 10_000_000_000),
        ("100000000.00", MAX_FEN),
    ],
)
def test_to_fen(text, fen):
    assert to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    ["1.", ".5", "+1.00", "0x10", "1 000", "1.2.3", "NaN", "inf", "100000000.01", "1000000000", "¥25.80"],
)
def test_not_a_price(text):
    with pytest.raises(PriceError):
        to_fen(text)


@pytest.mark.parametrize("value", [None, 2580, b"25.80", True])
def test_only_strings_are_prices(value):
    with pytest.raises(PriceError, match="must be a string"):
        to_fen(value)


def test_the_error_quotes_the_bad_price():
    with pytest.raises(PriceError, match=r"'12\.345'"):
        to_fen("12.345")
    with pytest.raises(PriceError, match="above 100000000 元"):
        to_fen("999999999.99")


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (9, "0.09"),
        (10, "0.10"),
        (100, "1.00"),
        (2580, "25.80"),
        (9999999999, "99999999.99"),
        (MAX_FEN, "100000000.00"),
        (-5, "-0.05"),
        (-2580, "-25.80"),
    ],
)
def test_format_fen(fen, text):
    assert format_fen(fen) == text


@pytest.mark.parametrize(("text", "canonical"), [("5", "5.00"), ("5.5", "5.50"), ("007.50", "7.50")])
def test_formatting_gives_the_canonical_two_decimal_form(text, canonical):
    assert format_fen(to_fen(text)) == canonical


@pytest.mark.parametrize("text", ["２５.８０", "٢٥.٨٠"])
def test_non_ascii_digits_are_not_a_price(text):
    with pytest.raises(PriceError):
        to_fen(text)
