"""The deletion lane's rules: which requests are rejected at once, and which failures are retried."""

from __future__ import annotations

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from streams.errors import IndexingError, InvalidRequest, RetryableError, StreamsError, is_transient
from streams.forget.request import validate_deletion_request

GOOD = {"request_id": "r1", "subject": "ann@example.com", "subject_kind": "email"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"subject": ""}, "names no subject"),
        ({"subject": "   "}, "names no subject"),
        ({"subject": "not-an-email"}, "not an email"),
        ({"subject_kind": "passport"}, "unknown subject kind"),
        ({"subject_kind": "contact_id", "subject": "17; DROP TABLE"}, "not a numeric"),
        ({"request_id": ""}, "no request_id"),
    ],
)
def test_malformed_requests_are_rejected_with_the_reason(change: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        validate_deletion_request({**GOOD, **change})


def test_a_well_formed_request_passes() -> None:
    validate_deletion_request(GOOD)
    validate_deletion_request({**GOOD, "subject": "17", "subject_kind": "contact_id"})


def _api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    return ApiError("error", meta, {})


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (RetryableError("cluster away"), True),
        (ConnectionError("refused"), True),
        (TimeoutError(), True),
        (_api_error(429), True),
        (_api_error(503), True),
        (_api_error(400), False),
        (IndexingError("rejected"), False),
        (InvalidRequest("no subject"), False),
        (StreamsError("subject still found after deletion"), False),
        (ValueError("a bug"), False),
    ],
)
def test_one_rule_says_what_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_real_name_is_an_identifier_folded_and_a_mention_pattern() -> None:
    from streams.forget.expand import mention_patterns
    from streams.pipeline.mentions import MentionPattern
    from streams.records import subject_identifier

    assert subject_identifier("name", "  José   NÚÑEZ ") == "name:jose nunez"
    assert MentionPattern("name", "jose nunez") in mention_patterns({"name:jose nunez"})
    assert mention_patterns({"mediawiki_user:Alice"}) == set()


def test_a_one_word_name_is_refused() -> None:
    import pytest

    from streams.errors import InvalidRequest
    from streams.forget.request import validate_deletion_request

    with pytest.raises(InvalidRequest, match="one word"):
        validate_deletion_request({"request_id": "r", "subject": "Alice", "subject_kind": "name"})
    validate_deletion_request({"request_id": "r", "subject": "Alice Bell", "subject_kind": "name"})
    validate_deletion_request({"request_id": "r", "subject": "Alice", "subject_kind": "mediawiki_user"})
