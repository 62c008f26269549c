"""Finding and redacting a forgotten person's mentions by keyed hash (pipeline/mentions.py)."""

from __future__ import annotations

import pytest

from streams.forget.expand import mention_patterns
from streams.pipeline.mentions import MARKER, MentionPattern, NamePolicy, Redactor, could_mention, pattern_hashes

KEY = b"test-key"
PRIYA = [
    MentionPattern("email", "Priya.Park@umbrella-health.org"),
    MentionPattern("name", "Priya Park"),
    MentionPattern("phone", "+1-555-555-0123"),
]


def redactor(patterns: list[MentionPattern] = PRIYA) -> Redactor:
    return Redactor(KEY, pattern_hashes(KEY, patterns))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Priya Park from our platform team (priya.park@umbrella-health.org) first noticed it",
            f"{MARKER} from our platform team ({MARKER}) first noticed it",
        ),
        (
            "Please keep PRIYA  PARK (mailto:Priya.Park@Umbrella-Health.org) in copy",
            f"Please keep {MARKER} ({MARKER}) in copy",
        ),
        ("write to priya.park at umbrella-health dot org", f"write to {MARKER}"),
        ("write to priya.park [at] umbrella-health.org", f"write to {MARKER}"),
        ("Priya Park's laptop", f"{MARKER} laptop"),
        ("call (555) 555-0123 or +1 555 555 0123 or 555.555.0123", f"call {MARKER} or {MARKER} or {MARKER}"),
    ],
)
def test_written_variants_are_redacted(text: str, expected: str) -> None:
    assert redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Priya Parker is someone else",  # a longer word is another name
        "Priya\nPark",  # a name is written on one line
        "priya.park@umbrella-health.com",  # another domain
        "ticket 555-555-0124",  # another number
        "Priya met the park rangers",
    ],
)
def test_other_text_is_left_alone(text: str) -> None:
    assert redactor().redact(text) == text


ANNE = [
    MentionPattern("name", "Priya Anne Park-Lee"),
    MentionPattern("email", "priya.park-lee@umbrella-health.org"),
    MentionPattern("phone", "+49 30 1234567"),
]

# The table of written forms (docs/forgetting.md#how-a-person-is-written): each is redacted or kept as
# the default policy says. An ambiguous form counts only near another identifier of the person.
FORMS = [
    ("Priya Anne Park-Lee joined", True),
    ("PRIYA PARK-LEE joined", True),
    ("Priya Park Lee joined", True),
    ("Príya Párk-Lee joined", True),
    ("Priya A. Park-Lee joined", True),
    ("Park-Lee, Priya joined", True),
    ("Park-Lee, Priya Anne joined", True),
    ("Park-Lee Priya joined", True),
    ("Priya Park-Lee's laptop", True),
    ("call 030 1234567 today", True),
    ("call +49 (0)30 1234567 today", True),
    ("call 0049 30 1234567 today", True),
    ("ask P. Park-Lee from Umbrella Health", True),
    ("ask Dr. Park-Lee (umbrella-health.org)", True),
    ("Park-Lee, P. wrote from priya.park-lee@umbrella-health.org", True),
    ("ask P. Park-Lee about the invoice", False),
    ("Dr Park-Lee signed it", False),
    ("Priya met the Park-Lee family", False),
    ("I met Priya. Park-Lee rangers came", False),
    ("call 030 1234568 today", False),
]


@pytest.mark.parametrize(("text", "redacted"), FORMS)
def test_each_written_form_is_handled_as_the_policy_says(text: str, redacted: bool) -> None:
    assert (MARKER in redactor(ANNE).redact(text)) is redacted


@pytest.mark.parametrize(
    ("policy", "text", "redacted"),
    [
        ("always", "ask P. Park-Lee about the invoice", True),
        ("never", "ask P. Park-Lee from Umbrella Health", False),
        ("never", "Priya Park-Lee and P. Park-Lee", True),  # the certain form still is
    ],
)
def test_the_policy_decides_ambiguous_forms(policy: NamePolicy, text: str, redacted: bool) -> None:
    redacting = Redactor(KEY, pattern_hashes(KEY, ANNE), policy=policy)
    assert (MARKER in redacting.redact(text)) is redacted


def test_nearby_means_within_the_window() -> None:
    far = "ask P. Park-Lee about it." + " Filler words." * 20 + " Umbrella Health."
    assert MARKER not in redactor(ANNE).redact(far)
    assert MARKER in Redactor(KEY, pattern_hashes(KEY, ANNE), window=len(far)).redact(far)


def test_a_shared_mailbox_domain_is_no_context() -> None:
    gmail = [MentionPattern("name", "Priya Park"), MentionPattern("email", "priya.park@gmail.com")]
    assert redactor(gmail).redact("P. Park wrote from bob@gmail.com") == "P. Park wrote from bob@gmail.com"


def test_an_email_local_part_is_written_as_the_name_it_spells() -> None:
    patterns = mention_patterns({"email:priya.park@umbrella-health.org", "email:x9@example.com"})
    assert MentionPattern("name", "priya park") in patterns
    assert redactor(sorted(patterns, key=str)).redact("Priya Park called") == f"{MARKER} called"


def test_every_form_keeps_the_cheap_prefilter_honest() -> None:
    test = could_mention(ANNE)
    for text, redacted in FORMS:
        if redacted:
            assert test(text), text


def test_the_redactor_holds_hashes_never_the_names() -> None:
    hashes = pattern_hashes(KEY, PRIYA)
    assert all("priya" not in digest and "park" not in digest for digest in hashes)
    assert all(len(digest) == 32 for digest in hashes)
    # Another key, other hashes: without the ledger key a hash cannot be tested against a guess.
    assert not set(hashes) & set(pattern_hashes(b"another-key", PRIYA))
    assert Redactor(b"another-key", hashes).redact("Priya Park") == "Priya Park"


def test_patterns_too_short_to_be_safe_are_not_used() -> None:
    assert not MentionPattern("name", "Priya").usable()  # one word would redact every Priya
    assert not MentionPattern("phone", "12-34").usable()
    assert pattern_hashes(KEY, [MentionPattern("name", "Priya")]) == {}


def test_an_empty_redactor_changes_nothing() -> None:
    assert Redactor(KEY).redact("Priya Park, priya.park@umbrella-health.org") == (
        "Priya Park, priya.park@umbrella-health.org"
    )


def test_hostile_text_is_scanned_in_one_pass() -> None:
    """A 100,000-character token and long digit runs (hostile input) come back unchanged; an unbounded
    pattern used to backtrack over them from every position (hours on one event)."""
    token = "a" * 100_000
    digits = "5" * 100_000
    assert redactor().redact(token) == token
    assert redactor().redact(digits) == digits
    assert redactor().redact(f"{token} Priya Park") == f"{token} {MARKER}"


VARIANTS = [
    "Priya Park from our platform team (priya.park@umbrella-health.org) first noticed it",
    "Please keep PRIYA  PARK (mailto:Priya.Park@Umbrella-Health.org) in copy",
    "write to priya.park at umbrella-health dot org",
    "write to priya.park [at] umbrella-health.org",
    "Priya Park's laptop",
    "call (555) 555-0123",
    "or +1 555 555 0123",
    "or 555.555.0123",
    "ask Priya\tPark",
    "Priya Park — façade team",  # not ASCII: always scanned in full
]


@pytest.mark.parametrize("text", VARIANTS)
def test_the_cheap_prefilter_never_hides_a_mention(text: str) -> None:
    from streams.pipeline.mentions import could_mention

    assert redactor().mentions(text)
    assert could_mention(PRIYA)(text)


@pytest.mark.parametrize("text", ["a ticket about invoices", "call 555-555-0124", "Priya was here"])
def test_the_cheap_prefilter_skips_text_that_cannot_mention_them(text: str) -> None:
    """A prefilter that passes everything would be no skip at all (a surname alone passes it: "P. Park")."""
    assert not redactor().mentions(text)
    assert not could_mention(PRIYA)(text)
