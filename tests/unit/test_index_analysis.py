"""The index's text analysis: what a new index gets, what an existing one is recognised as, and that the
local stack's plugin provides the analyzer the mapping names."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.elastic.hybrid_index import ANALYSIS, index_analysis, index_body
from streams.stack.analysis_plugin import SOURCE_DIR


def test_a_new_index_analyses_title_section_and_text_with_the_configured_analyzer() -> None:
    mapping = index_body(384)["mappings"]
    assert mapping["_meta"] == {"analysis": ANALYSIS}
    for name in ("title", "section", "text"):
        assert mapping["properties"][name] == {"type": "text", "analyzer": ANALYSIS}
    assert index_analysis(mapping) == ANALYSIS


def test_an_index_from_before_the_analysis_was_recorded_is_standard() -> None:
    assert index_analysis({"properties": {"text": {"type": "text"}}}) == "standard"


def test_an_unknown_analysis_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown analysis"):
        index_body(384, analysis="klingon")


def test_the_local_plugin_registers_the_analyzer_the_mapping_names() -> None:
    java = next(Path(SOURCE_DIR / "src").rglob("*.java")).read_text()
    assert f'Map.of("{ANALYSIS}"' in java
    assert f'new PreBuiltAnalyzerProviderFactory("{ANALYSIS}"' in java
    descriptor = (SOURCE_DIR / "plugin-descriptor.properties").read_text()
    assert "elasticsearch.version=@ELASTICSEARCH_VERSION@" in descriptor
