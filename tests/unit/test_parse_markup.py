"""Real-world markup through the parsers: each input with the blocks, (section, paragraph), it must give."""

from __future__ import annotations

import pytest

from streams.errors import ChunkingError
from streams.pipeline.chunk_document import chunk_text, parse_blocks
from streams.pipeline.parse_mail import SCANNED_LINES
from streams.pipeline.parse_wikitext import MAX_PARSE_COST, unclosed_openings
from streams.records import TextFormat

MEDIAWIKI_PAGE = """{{Infobox software
| name       = PostgreSQL
| logo       = [[File:Postgresql elephant.svg|100px]]
| developer  = PostgreSQL Global Development Group
| released   = {{Start date and age|1996|07|08}}
| license    = [[PostgreSQL License]]
}}
{{Short description|Relational database}}
'''PostgreSQL''' ({{IPAc-en|ˌ|p|oʊ|s|t|ɡ|r|ɛ|s|ˌ|k|juː|ˈ|ɛ|l}}), also known as '''Postgres''', is a
[[Free and open-source software|free and open-source]] [[relational database management system]]
(RDBMS) emphasizing [[extensibility]] and [[SQL]] compliance.<ref name="about">{{cite web
|url=https://www.postgresql.org/about/ |title=About |access-date=2026-03-02}}</ref>
__TOC__
[[File:PostgreSQL logo.svg|thumb|The logo, a [[elephant]]]]

== History ==
PostgreSQL evolved from the Ingres project at the [[University of California, Berkeley]].<ref>Stonebraker, 1986.</ref>
<!-- TODO: expand the early history -->

=== Releases ===
{| class="wikitable sortable"
|+ Release history
! Version !! Released
|-
| 15 || {{dts|2022|10|13}} October 2022
|-
| style="background:#fdd" | 9.6 || September 2016
|}

Major releases:
* yearly, in the autumn
** with five years of support
# see [https://www.postgresql.org/support/versioning/ the versioning policy]

== See also ==
* [[Comparison of relational database management systems]]

== References ==
{{Reflist}}
<references />

[[Category:PostgreSQL]]
[[Category:Free database management systems]]
"""

RT_HTML_REPLY = """<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<style type="text/css">body { font-family: Calibri; }</style></head>
<body><div dir="ltr"><div>Hi Priya,</div><div><br></div>
<div>Restarting the <b>VPN client</b> fixed it on both machines:</div>
<ul><li>Linux: openvpn 2.6.1</li><li>macOS: Tunnelblick 4.0</li></ul>
<div>Thanks,<br>Sam</div></div><br>
<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, 3 Mar 2026 at 10:12, Priya Park via RT
&lt;<a href="mailto:support@example.com">support@example.com</a>&gt; wrote:<br></div>
<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204)">
<div>Have you tried restarting the client?</div>
<blockquote class="gmail_quote"><div>It does not connect since the update.</div></blockquote>
</blockquote></div>
<script>track('open')</script></body></html>"""

PLAIN_REPLY = """Thanks, restarting the VPN client fixed it.

I will close the ticket tomorrow.

On Tue, 3 Mar 2026 at 10:12, Priya Park <priya@example.com> wrote:
> Have you tried restarting the client?
>
> On Mon, 2 Mar 2026, Sam Lee <sam@example.com> wrote:
> > It does not connect since the update.
"""

OUTLOOK_REPLY = """Please find the client logs attached.

Regards,
Sam

-----Original Message-----
From: Support <support@example.com>
Sent: Monday, March 2, 2026 9:00 AM
To: Sam Lee <sam@example.com>
Subject: RE: [example.com #4211] VPN does not connect

Could you send us the client logs?
"""

OUTLOOK_HTML_REPLY = """<html><body><div class="WordSection1">
<p class="MsoNormal">The invoice is correct now.<o:p></o:p></p>
<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">
<p class="MsoNormal"><b>From:</b> Billing &lt;billing@example.com&gt;<br><b>Sent:</b> Monday, March 2, 2026 9:00 AM
<br><b>To:</b> Sam Lee<br><b>Subject:</b> Invoice 1043</p></div>
<p class="MsoNormal">We corrected the amount.</p></div></body></html>"""

INTERLEAVED_REPLY = """> Does it fail on Linux too?
Yes, on Ubuntu 24.04.

> Which client version?
2.6.1, from the vendor's repository.
"""

CASES: list[tuple[str, str, TextFormat, list[tuple[str, str]]]] = [
    (
        "mediawiki page: infobox, refs, table, file links, categories",
        MEDIAWIKI_PAGE,
        "wikitext",
        [
            (
                "",
                "PostgreSQL (), also known as Postgres, is a\nfree and open-source relational database management"
                " system\n(RDBMS) emphasizing extensibility and SQL compliance.",
            ),
            ("History", "PostgreSQL evolved from the Ingres project at the University of California, Berkeley."),
            (
                "History > Releases",
                "Release history\nVersion | Released\n15 | October 2022\n9.6 | September 2016",
            ),
            (
                "History > Releases",
                "Major releases:\n- yearly, in the autumn\n- with five years of support\n- see the versioning policy",
            ),
            ("See also", "- Comparison of relational database management systems"),
        ],
    ),
    (
        "request tracker html reply with a gmail quote",
        RT_HTML_REPLY,
        "email_html",
        [
            ("", "Hi Priya,"),
            ("", "Restarting the VPN client fixed it on both machines:"),
            ("", "Linux: openvpn 2.6.1"),
            ("", "macOS: Tunnelblick 4.0"),
            ("", "Thanks,\nSam"),
        ],
    ),
    (
        "plain reply with an attribution line and > lines",
        PLAIN_REPLY,
        "email",
        [("", "Thanks, restarting the VPN client fixed it."), ("", "I will close the ticket tomorrow.")],
    ),
    (
        "outlook plain reply with an original message",
        OUTLOOK_REPLY,
        "email",
        [("", "Please find the client logs attached."), ("", "Regards,\nSam")],
    ),
    (
        "outlook html reply with a From/Sent header",
        OUTLOOK_HTML_REPLY,
        "email_html",
        [("", "The invoice is correct now.")],
    ),
    (
        "answers interleaved with > quotes",
        INTERLEAVED_REPLY,
        "email",
        [("", "Yes, on Ubuntu 24.04."), ("", "2.6.1, from the vendor's repository.")],
    ),
]


@pytest.mark.parametrize(("text", "text_format", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_real_world_markup_gives_the_text_a_reader_sees(
    text: str, text_format: TextFormat, expected: list[tuple[str, str]]
) -> None:
    assert parse_blocks(text, text_format) == expected


def test_the_same_html_as_a_plain_page_keeps_its_quotes() -> None:
    """Quotes are dropped only where the mapping says the text is a message in a thread."""
    text = " ".join(paragraph for _, paragraph in parse_blocks(RT_HTML_REPLY, "html"))
    assert "Have you tried restarting the client?" in text and "track" not in text


def test_a_message_with_only_history_has_no_chunks() -> None:
    assert chunk_text("On Tue, 3 Mar 2026, Priya Park <priya@example.com> wrote:\n> Any news?\n", "email") == []


def test_wikitext_unclosed_html_tags_read_as_text_without_markup() -> None:
    (block,) = parse_blocks("Use <span style='color:red'>care and <code>VACUUM</code> often.", "wikitext")
    assert block == ("", "Use care and VACUUM often.")


def test_wikitext_nowiki_and_pre_keep_their_text() -> None:
    text = "<nowiki>[[not a link]]</nowiki> and\n<pre>SELECT 1 &lt; 2;</pre>"
    assert parse_blocks(text, "wikitext") == [("", "[[not a link]] and\nSELECT 1 < 2;")]


def test_wikitext_with_too_many_unclosed_openings_is_refused_with_the_reason() -> None:
    """mwparserfromhell backtracks to the end from each unclosed opening: such text is a dead letter."""
    hostile = "<span>" * 2_000 + "word " * 20_000
    assert unclosed_openings(hostile) * len(hostile) > MAX_PARSE_COST
    with pytest.raises(ChunkingError, match="unclosed openings"):
        parse_blocks(hostile, "wikitext")
    assert unclosed_openings("<b>bold</b> <br> <ref name=a/> {{a|{{b}}}} [[x]] <span>") == 1


def test_html_nested_deeper_than_the_parser_allows_is_refused_with_the_reason() -> None:
    with pytest.raises(ChunkingError, match="Excessive depth"):
        parse_blocks("<div>" * 300 + "deep text", "html")


@pytest.mark.parametrize(
    "declaration",
    [
        '<meta charset="iso-8859-1">',
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
        '<?xml version="1.0" encoding="latin-1"?>',
    ],
)
def test_html_is_read_as_the_text_it_is_whatever_charset_it_declares(declaration: str) -> None:
    """The part's text is already decoded: a charset the markup declares is stale."""
    html = f"<html><head>{declaration}</head><body><p>café 数据</p></body></html>"
    assert parse_blocks(html, "html") == parse_blocks(html, "email_html") == [("", "café 数据")]


@pytest.mark.parametrize("text", ["", "   ", "<!-- only a comment -->", "<!DOCTYPE html>"])
def test_html_without_content_has_no_blocks(text: str) -> None:
    assert parse_blocks(text, "html") == [] and parse_blocks(text, "email_html") == []


def test_history_is_found_in_the_first_lines_of_a_long_reply() -> None:
    """quotequail reads only the first SCANNED_LINES lines; history that starts there is dropped whole."""
    answer = "\n\n".join(f"Step {i}: restart the service." for i in range(10))
    history = "\n".join(f"> old line {i}" for i in range(SCANNED_LINES + 500))
    history_only = "\n".join(f"old line {i}" for i in range(SCANNED_LINES + 500))
    reply = f"{answer}\n\nOn Tue, 3 Mar 2026, Priya Park <priya@example.com> wrote:\n{history}\n"
    unquoted = f"{answer}\n\n-----Original Message-----\nFrom: Priya Park\nSent: Monday\n\n{history_only}\n"
    assert [text for _, text in parse_blocks(reply, "email")] == answer.split("\n\n")
    assert [text for _, text in parse_blocks(unquoted, "email")] == answer.split("\n\n")
