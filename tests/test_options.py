"""Typed plugin options: ``KEY=VALUE`` strings converted by each field's annotation."""

from dataclasses import dataclass
from typing import Literal

import pytest

from xai_fer.errors import UserError
from xai_fer.options import option, parse_options


@dataclass
class _Options:
    size: Literal[3, 5, 7] = option(3, "an odd kernel size")
    mode: Literal["fast", "exact"] = option("fast", "how")
    box: tuple[int, str] = option((1, "a"), "a number and a name")
    widths: tuple[int, ...] = option((1,), "any number of widths")


def test_each_value_keeps_its_literal_type():
    parsed = parse_options(_Options, {"size": "5", "mode": "exact"}, "demo")
    assert parsed.size == 5 and isinstance(parsed.size, int) and parsed.mode == "exact"
    with pytest.raises(UserError, match="'4' is not one of 3, 5, 7"):
        parse_options(_Options, {"size": "4"}, "demo")


def test_fixed_length_tuples_check_the_count_and_convert_each_item_by_its_own_type():
    assert parse_options(_Options, {"box": "2, b"}, "demo").box == (2, "b")
    with pytest.raises(UserError, match="expected 2 comma-separated values, got 3"):
        parse_options(_Options, {"box": "1,2,3"}, "demo")
    assert parse_options(_Options, {"widths": "8,16,32"}, "demo").widths == (8, 16, 32)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(text):
    @dataclass
    class Rate:
        rate: float = option(0.1, "a rate")

    with pytest.raises(UserError, match="expected a finite number"):
        parse_options(Rate, {"rate": text}, "demo")


def test_option_types_read_as_what_they_accept():
    from typing import Literal

    from xai_fer.options import type_name

    assert type_name(Literal["noise", "image"]) == "one of noise, image"
    assert type_name(tuple[int, ...]) == "int, ..."
    assert type_name(tuple[int, str]) == "int, str"
    assert type_name(int | None) == "int or None"
    assert type_name(float) == "float"
