"""Mentions of a forgotten person in free text: found and redacted by keyed hash, never by clear text.

A forgotten person is named in other people's documents ("Please keep Priya Park
(priya.park@umbrella-health.org) in copy"). Their *mention patterns* are their email addresses,
their full name and their phone numbers. The suppression ledger keeps only a keyed hash of each
normalized form of each pattern, so the ledger itself is not a list of forgotten people's names.

Redaction works from the hashes alone: every candidate in a text (each email-shaped string, each
phone-shaped digit run, each run of two to four words) is normalized the same way, hashed with the
same key and replaced by ``[redacted]`` when its hash is in the set. The same code redacts new
events on the write path and the chunks already in the index when a request arrives, so both agree.

Written variants that count as the same mention (docs/forgetting.md has the whole table):
- email: any letter case, with or without ``mailto:``, and the common ``name at domain`` /
  ``name [at] domain`` / ``name(at)domain`` obfuscations;
- name: any letter case, accents and whitespace; hyphens and periods; surname first ("Park, Priya",
  "Park Priya"); with or without middle names, or their initials ("Priya A. Park"). A name is a
  phrase, never a single word;
- phone: any separators, with or without the country code or the trunk prefix, parsed by
  ``phonenumbers`` where it carries its country code.

Some forms are *ambiguous*: an initial or a title with the surname ("P. Park", "Park, P.", "Dr Park")
names many people. What they do is a policy (`NamePolicy`): by default they are redacted only with a
second identifier of a forgotten person nearby (a certain mention, their email domain, or the
employer that domain names: "umbrella health").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast, get_args

import phonenumbers

from streams.records import normalize_email

MentionKind = Literal["email", "name", "phone"]
MENTION_KINDS: tuple[MentionKind, ...] = get_args(MentionKind)  # the mappings' `mentions` keys too
# What the ledger stores beside each hash: a mention kind, an ambiguous name form (redacted as the
# policy says), or a context that makes an ambiguous form nearby count (an email domain, an employer).
HashKind = Literal["email", "name", "phone", "name?", "context"]
AMBIGUOUS: HashKind = "name?"
CONTEXT: HashKind = "context"
NamePolicy = Literal["nearby", "always", "never"]
MARKER = "[redacted]"

# Bounded and anchored at a boundary: an unbounded `[\w.]+` before a missing '@' backtracks over the
# whole word from every position, quadratic on a 100,000-character token (a hostile input).
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}(?:@|\s*\[at\]\s*|\s*\(at\)\s*|\s+at\s+)"
    r"[\w-]{1,63}(?:(?:\.|\s*\[dot\]\s*|\s+dot\s+)[\w-]{1,63}){1,8}(?![\w-])",
    re.IGNORECASE,
)
_EMAIL_AT = re.compile(r"\s*\[at\]\s*|\s*\(at\)\s*|\s+at\s+", re.IGNORECASE)
_EMAIL_DOT = re.compile(r"\s*\[dot\]\s*|\s+dot\s+", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\d+(])\+?\(?\d[\d\s().-]{5,24}\d(?!\d)")
_WORD = re.compile(r"[^\W\d_]+(?:['’.-][^\W\d_]+)*")
# Words of one name sit on one line; an initial may keep its period, a surname written first its comma.
_NAME_GAP = re.compile(r"\.?,?[ \t\u00a0]+")
_NAME_SPLIT = re.compile(r"[\s.\-‐‑–]+")
_DOMAIN = re.compile(r"(?<![\w.-])[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}(?![\w-])")
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15
MAX_NAME_WORDS = 4
FIRST_WORD = "first:"
TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "madam"})
# A shared mailbox provider's domain says nothing of who wrote: it is no context for a name.
PUBLIC_MAIL_DOMAINS = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com",
     "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de", "mail.com"}
)  # fmt: skip


def _fold(text: str) -> str:
    """Case and accents dropped: "José" and "JOSE" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def name_words(written: str) -> list[str]:
    """One written word of a name as its folded parts: "Anne-Marie" is "anne marie", "A." is "a"."""
    return [part for part in _NAME_SPLIT.split(_fold(written)) if part]


def normalize(kind: MentionKind, value: str) -> str:
    """The canonical form hashed for a pattern and for every candidate found in text."""
    if kind == "email":
        value = normalize_email(value).removeprefix("mailto:")
        value = _EMAIL_DOT.sub(".", _EMAIL_AT.sub("@", value))
        return value
    if kind == "phone":
        return "".join(ch for ch in value if ch.isdigit())
    # A comma stays: "park, priya" (surname first) is a form of its own.
    return ", ".join(" ".join(name_words(segment)) for segment in value.split(",") if name_words(segment))


def phone_forms(written: str) -> list[str]:
    """The digit forms a written phone number counts as: all its digits, its last ten (a North
    American number with or without its 1), and its national significant number where the number
    says its country (``+49 (0)30 1234567``, ``0049 30 1234567``) or starts with a trunk prefix
    (``030 1234567``)."""
    digits = normalize("phone", written)
    forms = [digits]
    if len(digits) > 10:
        forms.append(digits[-10:])
    text = written.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        try:
            national = phonenumbers.national_significant_number(phonenumbers.parse(text, None))
        except phonenumbers.NumberParseException:
            national = ""
    else:
        national = digits.lstrip("0") if digits.startswith("0") else ""
    if len(national) >= MIN_PHONE_DIGITS:
        forms.append(national)
    return list(dict.fromkeys(forms))


def name_forms(value: str) -> tuple[list[str], list[str]]:
    """The normalized forms of a full name: (certain, ambiguous).

    Certain: the name itself; without its middle names or with their initials; surname first, with
    or without a comma. Ambiguous: an initial or a title with the surname. The last word is taken as
    the surname (a hyphenated surname is one word: "Park-Lee"); a title before the name is dropped.
    """
    parts = [" ".join(words) for raw in value.replace(",", " ").split() if (words := name_words(raw))]
    while parts and parts[0] in TITLES:
        parts.pop(0)
    if len(parts) < 2:
        return [], []
    given, middle, surname = parts[0], parts[1:-1], parts[-1]
    initials = " ".join(word[0] for word in middle)
    certain = [" ".join(parts), f"{given} {surname}", f"{surname}, {given}", f"{surname} {given}"]
    if middle:
        certain += [f"{given} {initials} {surname}", f"{surname}, {given} {' '.join(middle)}"]
    ambiguous = [f"{given[0]} {surname}", f"{surname}, {given[0]}", *(f"{title} {surname}" for title in sorted(TITLES))]
    if middle:
        ambiguous.append(f"{given[0]} {initials} {surname}")
    certain = list(dict.fromkeys(certain))
    return certain, [form for form in dict.fromkeys(ambiguous) if form not in certain]


def context_forms(email: str) -> list[str]:
    """What counts as "nearby" for an ambiguous name form of the person with this email: its domain,
    and the employer the domain names ("umbrella-health.org": "umbrella health")."""
    domain = normalize("email", email).rpartition("@")[2]
    if not domain or domain in PUBLIC_MAIL_DOMAINS or "." not in domain:
        return []
    label = domain.rsplit(".", 1)[0].rsplit(".", 1)[-1]
    employer = " ".join(name_words(label))
    return [domain] + ([employer] if len(employer) >= 4 and employer.replace(" ", "").isalpha() else [])


@dataclass(frozen=True)
class MentionPattern:
    """One way a person is written in text. Clear text: lives only while a request is handled."""

    kind: MentionKind
    value: str

    @property
    def normalized(self) -> str:
        return normalize(self.kind, self.value)

    def forms(self) -> list[str]:
        """The normalized forms that certainly name the person (name_forms, phone_forms)."""
        if self.kind == "phone":
            return phone_forms(self.value)
        if self.kind == "name":
            return name_forms(self.value)[0]
        return [self.normalized]

    def usable(self) -> bool:
        """Too short a pattern would redact ordinary words or numbers: a name needs two words."""
        form = self.normalized
        if self.kind == "name":
            return bool(name_forms(self.value)[0])
        if self.kind == "phone":
            return MIN_PHONE_DIGITS <= len(form) <= MAX_PHONE_DIGITS
        return "@" in form

    @property
    def surname(self) -> str:
        """A name's last word: every form of the name, certain or ambiguous, contains it."""
        return name_forms(self.value)[0][0].split()[-1]

    def phrase(self) -> str:
        """The text a search engine's phrase query uses to look for this pattern."""
        if self.kind == "phone":
            return self.value
        return self.normalized


def keyed_hash(key: bytes, kind: str, form: str) -> str:
    # Keyed BLAKE2b is a MAC: without the key, a hash cannot be tested against a guessed name.
    return hashlib.blake2b(f"{kind}:{form}".encode(), key=key, digest_size=16).hexdigest()


def _stronger(kind: HashKind, other: HashKind | None) -> HashKind:
    """A form certain for one person and ambiguous for another is certain."""
    return other if other is not None and kind == AMBIGUOUS else kind


def pattern_hashes(key: bytes, patterns: Iterable[MentionPattern]) -> dict[str, HashKind]:
    """hash -> kind for every usable form of every pattern (what the ledger stores).

    A name's forms are all hashed as "name"; the value says whether a form is certain or ambiguous.
    A name also stores the hash of each word a form starts with (``first:<word>``, a form no candidate
    takes), so that redaction hashes a run of words only where a known name could start. An email
    stores its context forms (context_forms).
    """
    hashes: dict[str, HashKind] = {}

    def put(digest: str, kind: HashKind) -> None:
        hashes[digest] = _stronger(kind, hashes.get(digest))

    for pattern in patterns:
        if not pattern.usable():
            continue
        if pattern.kind != "name":
            for form in pattern.forms():
                put(keyed_hash(key, pattern.kind, form), pattern.kind)
            if pattern.kind == "email":
                for form in context_forms(pattern.value):
                    put(keyed_hash(key, CONTEXT, form), CONTEXT)
            continue
        certain, ambiguous = name_forms(pattern.value)
        for forms, kind in ((certain, "name"), (ambiguous, AMBIGUOUS)):
            for form in forms:
                put(keyed_hash(key, "name", form), cast(HashKind, kind))
                put(keyed_hash(key, "name", FIRST_WORD + form.split()[0].rstrip(",")), cast(HashKind, kind))
    return hashes


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def _candidates(
    text: str, kinds: set[MentionKind], first_word_known: Callable[[str], bool]
) -> Iterator[tuple[MentionKind, Span, list[str]]]:
    if "email" in kinds:
        for match in _EMAIL.finditer(text):
            start = match.start()
            if text[max(0, start - 7) : start].lower() == "mailto:":
                start -= 7
            yield "email", Span(start, match.end()), [normalize("email", match.group())]
    if "phone" in kinds:
        for match in _PHONE.finditer(text):
            digits = normalize("phone", match.group())
            if MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
                yield "phone", Span(match.start(), match.end()), phone_forms(match.group())
    if "name" in kinds:
        yield from _name_candidates(text, first_word_known)


def _joins_a_name(text: str, before: re.Match[str], after: re.Match[str]) -> bool:
    """Whether two words are written as parts of one name: on one line, and a period only after an
    initial or a title ("P. Park", "Dr. Park"; not "met Priya. Park rangers")."""
    gap = text[before.end() : after.start()]
    if not _NAME_GAP.fullmatch(gap):
        return False
    return not gap.startswith(".") or len(before.group()) == 1 or _fold(before.group()) in TITLES


def _name_candidates(
    text: str, first_word_known: Callable[[str], bool]
) -> Iterator[tuple[MentionKind, Span, list[str]]]:
    """Runs of two to four words on one line that start with a word a known name's form starts with."""
    words = list(_WORD.finditer(text))
    for i, first in enumerate(words):
        parts = name_words(first.group())
        if not parts or not first_word_known(parts[0]):
            continue  # the cheap test: most words start no name
        for n in range(2, MAX_NAME_WORDS + 1):
            last = i + n - 1
            if last >= len(words) or not _joins_a_name(text, words[last - 1], words[last]):
                break
            span = Span(first.start(), words[last].end())
            written = text[span.start : span.end]
            forms = [normalize("name", written)]
            if written[-2:] in {"'s", "’s"}:  # "Priya Park's laptop"
                forms.append(normalize("name", written[:-2]))
            yield "name", span, forms


def _context_spans(text: str) -> Iterator[tuple[Span, str]]:
    """Every domain, and every run of one to three words, as a context form."""
    for match in _DOMAIN.finditer(text):
        yield Span(match.start(), match.end()), match.group().lower()
    words = list(_WORD.finditer(text))
    for i, first in enumerate(words):
        for n in range(1, 4):
            if i + n > len(words):
                break
            last = words[i + n - 1]
            if n > 1 and not _joins_a_name(text, words[i + n - 2], last):
                break
            yield Span(first.start(), last.end()), " ".join(name_words(text[first.start() : last.end()]))


class Redactor:
    """Finds and replaces mentions whose keyed hash is known. Holds hashes, never names.

    `policy` says what an ambiguous name form does (name_forms): "always" redacts it, "never" leaves
    it, and "nearby" redacts it only within `window` characters of a certain mention or a context
    form (context_forms) of a forgotten person.
    """

    def __init__(
        self, key: bytes, hashes: dict[str, HashKind] | None = None, *, policy: NamePolicy = "nearby", window: int = 150
    ) -> None:
        self.key = key
        self.hashes: dict[str, HashKind] = {}
        self.policy = policy
        self.window = window
        self._known = lru_cache(maxsize=65536)(self._hash_kind)
        self.add(hashes or {})

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def add(self, hashes: dict[str, HashKind]) -> None:
        for digest, kind in hashes.items():
            self.hashes[digest] = _stronger(kind, self.hashes.get(digest))
        self._known.cache_clear()

    def _hash_kind(self, kind: str, form: str) -> HashKind | None:
        return self.hashes.get(keyed_hash(self.key, kind, form))

    def _first_word_known(self, word: str) -> bool:
        return self._known("name", FIRST_WORD + word) is not None

    def spans(self, text: str) -> list[Span]:
        """Where `text` mentions a known pattern, overlapping spans merged, in order."""
        if not self.hashes or not text:
            return []
        kinds = {cast(MentionKind, "name" if kind == AMBIGUOUS else kind) for kind in self.hashes.values()}
        found: list[Span] = []
        ambiguous: list[Span] = []
        for kind, span, forms in _candidates(text, kinds, self._first_word_known):
            stored = {self._known(kind, form) for form in forms}
            if kind in stored:
                found.append(span)
            elif AMBIGUOUS in stored:
                ambiguous.append(span)
        if ambiguous and self.policy == "always":
            found += ambiguous
        elif ambiguous and self.policy == "nearby":
            anchors = found + [span for span, form in _context_spans(text) if self._known(CONTEXT, form) == CONTEXT]
            found += [
                span
                for span in ambiguous
                if any(a.start - self.window <= span.end and span.start <= a.end + self.window for a in anchors)
            ]
        merged: list[Span] = []
        for span in sorted(found, key=lambda s: (s.start, -s.end)):
            if merged and span.start <= merged[-1].end:
                merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
            else:
                merged.append(span)
        return merged

    def redact(self, text: str) -> str:
        spans = self.spans(text)
        for span in reversed(spans):
            text = text[: span.start] + MARKER + text[span.end :]
        return text

    def mentions(self, text: str) -> int:
        return len(self.spans(text))


_NOT_DIGIT = re.compile(r"\D+")


def could_mention(patterns: Iterable[MentionPattern]) -> Callable[[str], bool]:
    """A cheap test that is False only where `Redactor.mentions` would find none of `patterns`.

    For a scan of many texts (every dead letter) that pays the redactor's full candidate search only
    where a mention is possible. Exact for ASCII text, where normalizing is lower-casing: every
    written variant of an email keeps its local part, a name its surname, a phone the last seven
    of its digits in a row once separators are dropped. Other text is always scanned in full
    (Unicode normalization does not keep substrings), so the test never hides a mention.
    """
    usable = [pattern for pattern in patterns if pattern.usable()]
    # Every form of a name, certain or ambiguous, contains its surname.
    words = sorted(
        {p.normalized.split("@", 1)[0] for p in usable if p.kind == "email"}
        | {p.surname for p in usable if p.kind == "name"}
    )
    digits = sorted({p.normalized[-MIN_PHONE_DIGITS:] for p in usable if p.kind == "phone"})

    def test(text: str) -> bool:
        if not text or not usable:
            return False
        if not text.isascii():
            return True
        lowered = text.lower()
        if any(word in lowered for word in words):
            return True
        return bool(digits) and any(run in _NOT_DIGIT.sub("", text) for run in digits)

    return test
