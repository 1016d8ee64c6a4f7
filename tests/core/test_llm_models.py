"""The model table: lookup by name and prefix, prices as exact decimals, overrides."""

from __future__ import annotations

from decimal import Decimal

import pytest

from botkit.exceptions import ConfigError
from botkit.llm import ModelInfo, ModelTable, Usage


@pytest.fixture
def table() -> ModelTable:
    return ModelTable()


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-x", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4-turbo", "gpt-4-turbo"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-32k-0613", "gpt-4-32k"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o1-mini-2024-09-12", "o1-mini"),
        ("openai/gpt-4o", "gpt-4o"),
    ],
)
def test_lookup_finds_exact_name_or_longest_prefix(
    table: ModelTable, asked: str, found: str
) -> None:
    assert table.lookup(asked) == table.lookup(found)
    assert table.lookup(found).name == found
    assert table.is_known(asked)


@pytest.mark.parametrize("asked", ["llama3:8b", "gpt-4.5-preview", "gpt-4omni", "mistral"])
def test_unknown_model_gets_no_price_and_a_conservative_window(
    table: ModelTable, asked: str
) -> None:
    info = table.lookup(asked)
    assert info.name == asked
    assert info.input_price_per_1k is None
    assert info.output_price_per_1k is None
    assert info.context_window == 8_192
    assert info.encoding is None
    assert info.cost(Usage(1000, 1000)) is None
    assert not table.is_known(asked)


def test_gpt4_turbo_1000_in_1000_out_costs_exactly_four_cents(table: ModelTable) -> None:
    cost = table.lookup("gpt-4-turbo").cost(Usage(1000, 1000))
    assert isinstance(cost, Decimal)
    assert cost == Decimal("0.04")


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        ("gpt-4", Usage(1000, 1000), Decimal("0.09")),
        ("gpt-4-32k", Usage(2000, 500), Decimal("0.18")),
        ("gpt-4o", Usage(1000, 1000), Decimal("0.0125")),
        ("gpt-4o-mini", Usage(1_000_000, 0), Decimal("0.15")),
        ("gpt-3.5-turbo", Usage(1, 1), Decimal("0.000002")),
    ],
)
def test_costs_are_exact_decimals(
    table: ModelTable, model: str, usage: Usage, expected: Decimal
) -> None:
    assert table.lookup(model).cost(usage) == expected


def test_no_usage_has_no_cost(table: ModelTable) -> None:
    assert table.lookup("gpt-4o").cost(None) is None


@pytest.mark.parametrize(
    ("model", "window", "encoding"),
    [
        ("gpt-4-turbo", 128_000, "cl100k_base"),
        ("gpt-4-turbo-preview", 128_000, "cl100k_base"),
        ("gpt-4", 8_192, "cl100k_base"),
        ("gpt-4-32k", 32_768, "cl100k_base"),
        ("gpt-4o", 128_000, "o200k_base"),
        ("gpt-4o-mini", 128_000, "o200k_base"),
        ("gpt-3.5-turbo", 16_385, "cl100k_base"),
    ],
)
def test_builtin_windows_and_encodings(
    table: ModelTable, model: str, window: int, encoding: str
) -> None:
    info = table.lookup(model)
    assert info.context_window == window
    assert info.encoding == encoding


def test_reasoning_models_take_max_completion_tokens(table: ModelTable) -> None:
    assert table.lookup("o1").token_parameter == "max_completion_tokens"
    assert table.lookup("o3-mini-2025-01-31").token_parameter == "max_completion_tokens"
    assert table.lookup("gpt-4o").token_parameter == "max_tokens"


def test_prompt_budget_reserves_output_capped_at_the_model_limit(table: ModelTable) -> None:
    turbo = table.lookup("gpt-4-turbo")
    assert turbo.prompt_budget(1_000) == 127_000
    assert turbo.prompt_budget(100_000) == 128_000 - 4_096


def test_config_overrides_only_the_fields_given(table: ModelTable) -> None:
    overridden = ModelTable.from_config(
        {"gpt-4o": {"input_price_per_1k": "0.002"}, "gpt-4o-mini": {"output_price_per_1k": 0.0007}}
    )
    info = overridden.lookup("gpt-4o")
    assert info.input_price_per_1k == Decimal("0.002")
    assert info.output_price_per_1k == Decimal("0.01")
    assert info.context_window == 128_000
    # a float from TOML becomes the decimal it reads as, not its binary approximation
    assert overridden.lookup("gpt-4o-mini").output_price_per_1k == Decimal("0.0007")
    assert table.lookup("gpt-4o").input_price_per_1k == Decimal("0.0025")


def test_config_adds_a_local_model_with_a_price() -> None:
    table = ModelTable.from_config(
        {"llama3": {"context_window": 8192, "input_price_per_1k": "0", "output_price_per_1k": 0}}
    )
    info = table.lookup("llama3:8b")
    assert info.name == "llama3"
    assert info.cost(Usage(5000, 5000)) == Decimal(0)
    assert info.encoding is None


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"window": 1}, 'llm.models."x".window'),
        ({"context_window": "big"}, 'llm.models."x".context_window'),
        ({"context_window": True}, 'llm.models."x".context_window'),
        ({"input_price_per_1k": "cheap"}, 'llm.models."x".input_price_per_1k'),
        ({"input_price_per_1k": "-1"}, 'llm.models."x".input_price_per_1k'),
        ({"token_parameter": "max"}, 'llm.models."x".token_parameter'),
        ({"encoding": "gpt2"}, 'llm.models."x".encoding'),
    ],
)
def test_bad_override_is_a_config_error_naming_the_key(
    fields: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ModelTable.from_config({"x": fields})
    assert caught.value.key == key


def test_table_without_builtins_knows_only_its_entries() -> None:
    mine = ModelInfo("mine", 4096, 1024, Decimal("0.001"), Decimal("0.002"))
    table = ModelTable([mine], include_builtins=False)
    assert list(table) == [mine]
    assert "gpt-4o" not in table
    assert table.lookup("gpt-4o").input_price_per_1k is None
