"""`archivist doctor`'s checks, in process: what they find, and that they leave nothing open behind them."""

from __future__ import annotations

import gc

from rag.settings import load_settings
from tests.ollama_standin import OllamaStandIn
from ui.doctor import check_llm, check_research


def test_the_language_model_check_finds_the_model_and_closes_its_connections(ollama: OllamaStandIn) -> None:
    finding = check_llm(load_settings(ollama_host=ollama.url))
    gc.collect()  # an unclosed client's socket would be reported now, and fail the test (filterwarnings: error)
    assert finding.level == "ok", finding
    assert ollama.url in finding.detail


def test_the_research_check_says_whether_the_model_takes_tools(ollama: OllamaStandIn) -> None:
    finding = check_research(load_settings(ollama_host=ollama.url))
    assert finding.level == "ok" and "may search, open, find and calculate" in finding.detail
    with OllamaStandIn(without_tools={"gpt-oss:20b"}) as plain:
        refused = check_research(load_settings(ollama_host=plain.url))
    gc.collect()
    assert refused.level == "warning" and "does not take tools" in refused.detail
    assert "ARCHIVIST_RESEARCH__MODE=quick" in refused.fix
