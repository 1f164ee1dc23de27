"""hpdash.markup: user text stays plain text in Streamlit Markdown; notes render to safe HTML.

Outputs are checked by parsing the HTML they render to (``html.parser``), never by looking
for substrings: every tag, every attribute, every ``href``/``src``.
"""

from __future__ import annotations

import html
import random
import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from hpdash import markup
from hpdash.markup import WORD_JOINER, code, escape, note_html

try:  # linkify-it-py makes markdown-it find GFM-style autolinks in text, as Streamlit does
    import linkify_it  # noqa: F401

    HAVE_LINKIFY = True
except ImportError:
    HAVE_LINKIFY = False

try:
    import hypothesis
    from hypothesis import strategies as hyp

    HAVE_HYPOTHESIS = True
except ImportError:
    HAVE_HYPOTHESIS = False


class _Html(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:  # noqa: ANN001
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs) -> None:  # noqa: ANN001
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(fragment: str) -> _Html:
    parser = _Html()
    parser.feed(fragment)
    parser.close()
    return parser


# -- notes ------------------------------------------------------------------------------------
NOTE_TAGS = {
    "p",
    "a",
    "em",
    "strong",
    "code",
    "pre",
    "ul",
    "ol",
    "li",
    "blockquote",
    "hr",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "s",
}
SAFE_HREF = re.compile(r"^(https?://[^\s/?#\\]+|mailto:\S+)", re.IGNORECASE)
REL = "nofollow noopener noreferrer"

#: Classic link/image/HTML payloads: none may produce an unsafe href, a src or a raw tag.
PAYLOADS = [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](<javascript:alert(1)>)",
    "[x](java\tscript:alert(1))",
    "[x](<java\tscript:alert(1)>)",
    "[x](java\nscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#58;alert(1))",
    "[x](&#0000106;&#0000097;vascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](\\javascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:text/html,<script>alert(1)</script>)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](/relative/path)",
    "[x](relative)",
    "[x](#fragment)",
    "[x](//evil.example/protocol-relative)",
    "[x](?query)",
    "[x](http:evil)",
    "[x](https:/evil)",
    "[x](http://)",
    "[x][1]\n\n[1]: javascript:alert(1)",
    "[x][1]\n\n[1]: <javascript:alert(1)>",
    "[1]\n\n[1]: data:text/html,hi",
    '[x]\n\n[x]: vbscript:msgbox(1) "title"',
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html,hi>",
    "<vbscript:msgbox(1)>",
    "<file:///etc/passwd>",
    "![img](http://evil.example/x.png)",
    '![img](https://evil.example/x.png "title")',
    "![](http://evil.example/x.png)",
    "![img](javascript:alert(1))",
    "![img](data:image/png;base64,iVBORw0KGgo=)",
    "![img][ref]\n\n[ref]: http://evil.example/x.png",
    "[![img](http://evil.example/x.png)](http://example.com)",
    "[![img](http://evil.example/x.png)](javascript:alert(1))",
    "![![inner](http://evil.example/a.png)](http://evil.example/b.png)",
    "<img src=x onerror=alert(1)>",
    '<IMG SRC="javascript:alert(1)">',
    "<script>alert(1)</script>",
    "<scr<script>ipt>alert(1)</script>",
    "<svg onload=alert(1)>",
    '<iframe src="http://evil.example"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    "<style>body{display:none}</style>",
    "<details open ontoggle=alert(1)>",
    "<!-- comment --><b>bold</b>",
    "<div>\n\n*x*\n\n</div>",
    '[a](javascript:alert(1) "t")[b](http://ok.example)',
    "[[nested](javascript:alert(1))](http://ok.example)",
    "[x[y](javascript:alert(1))z](http://ok.example)",
    '[x](<http://ok.example> "onmouseover=alert(1)")',
    '[x](http://ok.example" onmouseover="alert(1))',
    '[x](http://ok.example/"><script>alert(1)</script>)',
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    "    <script>alert(1)</script>",
    "| a | b |\n|:-|-:|\n| <img src=x> | [x](javascript:alert(1)) |",
    "~~<script>alert(1)</script>~~",
    "> <img src=x onerror=alert(1)>",
    "\u0000[x](javascript:alert(1))",
    "[x](\u0000javascript:alert(1))",
    "[x](&#x0A;javascript:alert(1))",
    "[x](\u200bjavascript:alert(1))",
]


def check_note_html(out: str) -> _Html:
    """Assert that a note's HTML has only expected tags and only safe attributes."""
    parsed = parse_html(out)
    for tag, attrs in parsed.tags:
        assert tag in NOTE_TAGS, (tag, out)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, out)
            assert name != "src", out
            if tag == "a":
                assert name in {"href", "rel", "target", "title"}, (name, out)
            elif tag in {"th", "td"}:
                assert name == "style" and re.fullmatch(r"text-align:(left|right|center)", value or ""), out
            elif tag == "code":
                assert name == "class" and (value or "").startswith("language-"), out
            else:
                raise AssertionError(f"unexpected attribute {name!r} on <{tag}>: {out}")
        if tag == "a":
            href = html.unescape(attrs.get("href") or "")
            assert SAFE_HREF.match(href), (href, out)
            assert attrs.get("rel") == REL and attrs.get("target") == "_blank", out
    return parsed


@pytest.mark.parametrize("payload", PAYLOADS)
def test_note_payloads_render_without_unsafe_markup(payload: str) -> None:
    out = note_html(payload)
    parsed = check_note_html(out)
    hrefs = [html.unescape(a.get("href") or "") for t, a in parsed.tags if t == "a"]
    # the only links the payloads may keep are their plain links to ok.example/example.com
    for href in hrefs:
        assert href.startswith(("http://ok.example", "http://example.com")), (href, out)


def test_unsafe_links_are_text_and_safe_links_stay() -> None:
    for payload in (
        "[x](javascript:alert(1))",
        "[x][1]\n\n[1]: javascript:alert(1)",
        "<javascript:alert(1)>",
        "[x](data:text/html,hi)",
        "[x](/relative)",
        "[x](&#106;avascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
    ):
        parsed = check_note_html(note_html(payload))
        assert [t for t, _ in parsed.tags if t == "a"] == [], payload
        assert "x" in "".join(parsed.text) or "javascript" in "".join(parsed.text)
    for payload, href in (
        ("[docs](https://example.com/a?b=1)", "https://example.com/a?b=1"),
        ("<http://example.com>", "http://example.com"),
        ("[mail](mailto:team@example.com)", "mailto:team@example.com"),
        ("<team@example.com>", "mailto:team@example.com"),
        ("[r][1]\n\n[1]: https://example.com", "https://example.com"),
    ):
        parsed = check_note_html(note_html(payload))
        links = [a for t, a in parsed.tags if t == "a"]
        assert len(links) == 1 and html.unescape(links[0]["href"]) == href, payload


def test_images_are_never_embedded() -> None:
    """An image becomes its alt text (its address as text when it has none): no <img>, and no
    link to the image's server either."""
    for note, text in (
        ("![a chart](https://example.com/c.png)", "a chart"),
        ("![](https://example.com/c.png)", "https://example.com/c.png"),
        ("![only *alt*](data:image/png;base64,AAAA)", "only alt"),
        ("![x](javascript:alert(1))", "x"),
        ("![img][ref]\n\n[ref]: http://evil.example/x.png", "img"),
    ):
        parsed = check_note_html(note_html(note))
        assert [t for t, _ in parsed.tags] == ["p"], note
        assert "".join(parsed.text).strip() == text, note
    parsed = check_note_html(note_html("[![badge](https://e.example/b.svg)](https://example.com)"))
    assert [t for t, _ in parsed.tags] == ["p", "a"] and "".join(parsed.text).strip() == "badge"
    assert parsed.tags[1][1]["href"] == "https://example.com"


def test_raw_html_is_text() -> None:
    parsed = check_note_html(note_html("<b>bold</b> <img src=x onerror=alert(1)>\n\n<script>x</script>"))
    assert [t for t, _ in parsed.tags] == ["p", "p"]
    text = "".join(parsed.text)
    assert "<b>bold</b>" in text and "<img src=x onerror=alert(1)>" in text and "<script>x</script>" in text


def test_tables_strikethrough_and_markdown_are_kept() -> None:
    out = note_html(
        "# Findings\n\n**k** ~~5~~ 7, *fast*\n\n| k | score |\n|---|--:|\n| 7 | 0.97 |\n\n- one\n- two\n\n`code`"
    )
    parsed = check_note_html(out)
    tags = [t for t, _ in parsed.tags]
    for tag in ("h1", "strong", "s", "em", "table", "th", "td", "ul", "li", "code"):
        assert tag in tags, (tag, out)


def test_long_notes_are_cut_with_a_notice() -> None:
    out = note_html("a" * (markup.MAX_NOTE_CHARS + 10))
    parsed = check_note_html(out)
    assert "".join(parsed.text).count("a" * 100) and "only the first part is shown" in out
    assert note_html(None) == "" and note_html("") == ""


#: The classic active-scheme link payloads (javascript:, data:, vbscript:), each the way a
#: filter is usually fooled: case, a tab or newline inside the scheme, entities, leading
#: spaces, autolinks, reference definitions, images and raw HTML.
ACTIVE_SCHEME_PAYLOADS = [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](<java\tscript:alert(1)>)",
    "[x](java\nscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6a;&#x61;vascript:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DaTa:text/html,<script>alert(1)</script>)",
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    "[x](  javascript:alert(1))",
    "[x](<  javascript:alert(1)>)",
    "[x](&#x20;javascript:alert(1))",
    "[x](%20javascript:alert(1))",
    "[x](\u0001javascript:alert(1))",
    "  javascript:alert(1)",
    "<javascript:alert(1)>",
    "<JaVaScRiPt:alert(1)>",
    "<data:text/html;base64,PHNjcmlwdD4=>",
    "<vbscript:msgbox(1)>",
    "[x][1]\n\n[1]: javascript:alert(1)",
    "[x][1]\n\n[1]:   javascript:alert(1)",
    "[x][1]\n\n[1]: <data:text/html,hi>",
    '[x][v]\n\n[v]: vbscript:msgbox(1) "title"',
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[![x](https://example.com/a.png)](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    "<a href='vbscript:msgbox(1)'>x</a>",
    '<img src="javascript:alert(1)">',
]
_BROWSER_URL_JUNK = re.compile(r"[\t\n\r]")  # what a browser's URL parser removes anywhere


def _scheme_as_a_browser_reads_it(href: str) -> str:
    """The scheme a browser would follow: entities decoded, C0 controls and spaces stripped at
    either end, tabs and line breaks removed anywhere (the WHATWG URL parser), lower case."""
    url = _BROWSER_URL_JUNK.sub("", html.unescape(href)).strip("".join(map(chr, range(0x21))))
    head, sep, _ = url.partition(":")
    return head.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", head) else ""


@pytest.mark.parametrize("payload", ACTIVE_SCHEME_PAYLOADS)
def test_active_scheme_links_in_notes_are_inert(payload: str) -> None:
    """No payload gives a link, an image or any attribute a browser would follow to an active
    scheme: the note shows the payload's text instead."""
    out = note_html(payload)
    parsed = check_note_html(out)
    for tag, attrs in parsed.tags:
        for name in ("href", "src", "action", "formaction"):
            value = attrs.get(name)
            if value is not None:
                assert _scheme_as_a_browser_reads_it(value) in ("http", "https", "mailto"), (payload, out)
        assert tag != "a", (payload, out)  # none of them is a link a note may keep
    assert "".join(parsed.text).strip(), f"{payload!r} left no text"


@pytest.mark.parametrize("payload", ACTIVE_SCHEME_PAYLOADS)
def test_active_scheme_payloads_as_names_are_plain_text(payload: str) -> None:
    """The same payloads as a name or value shown in Streamlit Markdown (``escape``): no link,
    image or tag at all."""
    parsed = parse_html(RENDER.render(escape(payload)))
    assert {t for t, _ in parsed.tags} <= {"p"}, (payload, parsed.tags)


def test_the_browser_scheme_check_is_not_vacuous() -> None:
    for href in ("java\tscript:alert(1)", " \x01JavaScript:x", "&#106;avascript:x", "DATA:x"):
        assert _scheme_as_a_browser_reads_it(href) in ("javascript", "data"), href
    assert _scheme_as_a_browser_reads_it("https://example.com") == "https"
    assert _scheme_as_a_browser_reads_it("/relative:x") == ""


def test_clip_cuts_long_text_and_says_how_much() -> None:
    assert markup.clip(None) == "" and markup.clip("short") == "short"
    exact = "a" * markup.MAX_SHOWN_CHARS
    assert markup.clip(exact) == exact
    long = "b" * (markup.MAX_SHOWN_CHARS + 12_345)
    cut = markup.clip(long)
    assert cut == "b" * markup.MAX_SHOWN_CHARS + "... (12,345 more characters)"
    assert markup.clip("abcdef", limit=3) == "abc... (3 more characters)"


def test_the_pages_shorthands_clip_before_escaping() -> None:
    """``common.md``/``common.code``: a megabyte quoted in an error is a few screens on the
    page, and the cut never splits an escape."""
    from hpdash.ui import common

    huge = "[x](javascript:alert(1)) " * 100_000
    for shown in (common.md(huge), common.code(huge)):
        assert len(shown) < 3 * markup.MAX_SHOWN_CHARS
        assert "more characters" in shown
    assert common.md("a_b") == escape("a_b") and common.code("a`b") == code("a`b")
    assert parse_html(RENDER.render(common.md(huge))).tags == [("p", {})]


# -- escape -----------------------------------------------------------------------------------
def _renderer() -> MarkdownIt:
    """A GFM-like markdown-it: tables, strikethrough, raw HTML on (so an unescaped tag would
    show up as a tag), and linkify (GFM autolinks) when linkify-it-py is installed."""
    if HAVE_LINKIFY:
        return MarkdownIt("gfm-like", {"html": True})
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


RENDER = _renderer()
# Streamlit's remark-gfm links www./http(s):// and e-mail addresses found in the *decoded*
# text (after escapes are resolved); remark-emoji turns :name: into emoji. These are its
# patterns (ASCII \w), made stricter: any match in the rendered text fails.
STREAMLIT_TEXT_PASSES = [
    re.compile(r"(https?://|www\.)", re.IGNORECASE | re.ASCII),
    re.compile(r"[-.\w+]@[-\w]+(\.[-\w]+)+", re.ASCII),
    re.compile(r":\+1:|:-1:|:[\w-]+:", re.ASCII),
]
ASCII_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
CONTROLS = {c: " " for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}

HOSTILE = [
    "",
    " ",
    "   ",
    "plain",
    "  lead and trail  ",
    "    indented code",
    "\tTab",
    "*em* **strong** _u_ __uu__ ~~s~~ `code` ``x``",
    "\\*not em\\*",
    "trailing backslash\\",
    "\\",
    "# heading",
    "###### h6",
    "- item",
    "+ item",
    "* item",
    "1. item",
    "1) item",
    "> quote",
    "---",
    "***",
    "___",
    "===",
    "| a | b |",
    "|---|",
    "a | b",
    "[link](http://evil.example)",
    "[x][1]",
    "[1]: http://evil.example",
    "![img](http://evil.example/x.png)",
    "![img]",
    "<http://evil.example>",
    "<a@b.co>",
    "<b>bold</b>",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<!-- c -->",
    "&amp; &lt; &#x27; &copy; &#32;",
    "&",
    "&#",
    "www.evil.example",
    "WWW.EVIL.EXAMPLE/path",
    "xwww.evil.example",
    "(www.evil.example)",
    "http://evil.example",
    "HTTPS://evil.example/a?b=c#d",
    "https://",
    "www.",
    "ftp://evil.example",
    "see https://evil.example.",
    "mail me: a.b+c@evil.example",
    "a@b",
    "foo@bar.baz.",
    "mailto:a@evil.example",
    "xmpp:a@evil.example",
    "javascript:alert(1)",
    ":smile: :+1: :-1: :a:b:c: :: :",
    ":material/home: :material_home:",
    ":streamlit:",
    ":red[danger] :blue-background[x] :rainbow[y]",
    "$x^2$",
    "$$\\int x$$",
    "\\$5 and $6",
    "costs $5 and $10",
    "~tilde~",
    "^caret^",
    "a_b_c",
    "snake_case_name",
    "{curly}",
    "[^1]",
    "line\nbreak",
    "crlf\r\nline",
    "cr\rline",
    "nul\x00byte",
    "esc\x1b[31mred",
    "bell\x07",
    "del\x7f",
    "c1\x85nel",
    "u2028\u2028sep",
    "u2029\u2029para",
    "rtl\u202eoverride",
    "zero\u200bwidth",
    f"joiner{WORD_JOINER}already",
    "emoji \U0001f600 \u05e9\u05dc\u05d5\u05dd",
    "combining e\u0301",
    "nbsp\u00a0space",
    "fullwidth\uff0e\uff1a",
    "`",
    "``",
    "```",
    "1\\. escaped",
    "<",
    ">",
    '"quoted"',
    "'single'",
    "a  b   c",
    "trailing two  ",
    "=1+1",
    "+SUM(A1)",
    "@cmd",
    "%s %d {0}",
    "\\n literal",
    "x" * 500,
]


def _rendered(markdown: str) -> _Html:
    return parse_html(RENDER.render(markdown))


def check_escape(s: str) -> None:
    """escape(s) renders to exactly s (controls as spaces, word joiners aside) in one <p>, with
    no other tag, no autolink or emoji for Streamlit's text passes, and every ASCII
    punctuation character of the source escaped (so no directive, shortcode or math) but
    those that mean nothing inside a line (``markup._PLAIN_INSIDE``)."""
    out = escape(s)
    expected = s.translate(CONTROLS)
    parsed = _rendered(out)
    tags = [t for t, _ in parsed.tags]
    assert tags == ([] if expected == "" else ["p"]), (s, out, tags)
    text = "".join(parsed.text)
    text = text[:-1] if text.endswith("\n") else text
    assert text.replace(WORD_JOINER, "") == expected.replace(WORD_JOINER, ""), (s, out, text)
    for pattern in STREAMLIT_TEXT_PASSES:
        assert not pattern.search(text), (s, out, pattern.pattern)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", out), (s, out)
    source = re.sub(r"&#32;", "", out)
    i = 0
    while i < len(source):
        if source[i] == "\\":
            assert i + 1 < len(source) and source[i + 1] in ASCII_PUNCTUATION, (s, out, i)
            i += 2
            continue
        assert source[i] not in ASCII_PUNCTUATION or source[i] in markup._PLAIN_INSIDE, (s, out, i, source[i])
        i += 1


@pytest.mark.parametrize("s", HOSTILE)
def test_escape_round_trips_hostile_strings(s: str) -> None:
    check_escape(s)


def test_escape_breaks_autolinks_and_shortcodes_with_a_word_joiner_only() -> None:
    assert escape(None) == ""
    assert escape("www.x.com") == f"www{WORD_JOINER}.x.com"
    assert escape("HTTPS://x.com") == f"HTTPS{WORD_JOINER}\\:\\/\\/x.com"
    assert escape("a@b.co") == f"a{WORD_JOINER}\\@b.co"
    assert escape("iris-rf-tpe 0.25") == "iris-rf-tpe 0.25"  # nothing to escape inside a line
    assert escape("- a") == "\\- a" and escape("12. b") == "12\\. b"  # but no list either
    assert escape(":smile:") == f"\\:{WORD_JOINER}smile\\:"
    assert escape("ratio:3 at 5") == "ratio\\:3 at 5"  # no word joiner where nothing would link
    assert escape("a\nb\tc") == "a b c"
    assert escape("  x ") == "&#32;&#32;x&#32;"
    assert escape(42) == "42"


def test_escaped_text_inside_bold_and_link_text_stays_text() -> None:
    for s in ("_x_", "  padded  ", "*", "a]b", "[x](y)", "www.evil.example"):
        parsed = _rendered(f"**{escape(s)}**")
        assert [t for t, _ in parsed.tags] == ["p", "strong"], s
        assert "".join(parsed.text).strip("\n").replace(WORD_JOINER, "") == s
        parsed = _rendered(f"[{escape(s)}](https://example.com)")
        assert [t for t, _ in parsed.tags] == ["p", "a"], s
        assert parsed.tags[1][1]["href"] == "https://example.com"


_ALPHABET = list("abcXYZ019 _-*+~`#>|!\\/:.@$%&;=?'\"()[]{}<>^\t\n\r\x00\x1b\u2028\u00e9\U0001f600")
_PIECES = [
    "www.",
    "http://",
    "https://",
    "@",
    ":smile:",
    ":red[",
    "$",
    "$$",
    "![",
    "](",
    "<img ",
    "<http://",
    "&#",
    "&amp;",
    "    ",
    "\n# ",
    "\n- ",
    "\n1. ",
    "\n> ",
    "```",
    "~~",
    "**",
    "[1]: ",
    ":material/",
    "evil.example",
    "mailto:",
    "javascript:",
]


def _random_strings(count: int, seed: int = 20240601) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = [
            rng.choice(_PIECES) if rng.random() < 0.3 else rng.choice(_ALPHABET) for _ in range(rng.randint(0, 30))
        ]
        out.append("".join(parts))
    return out


def test_escape_round_trips_generated_strings() -> None:
    for s in _random_strings(1500):
        check_escape(s)


if HAVE_HYPOTHESIS:  # pragma: no cover - hypothesis is optional

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(hyp.text(alphabet=hyp.sampled_from(_ALPHABET + _PIECES), max_size=40) | hyp.text(max_size=40))
    def test_escape_round_trips_hypothesis(s: str) -> None:
        check_escape(s)


# -- code ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "s",
    [
        "x",
        "`",
        "``",
        "a`b",
        "a``b`",
        "`starts",
        "ends`",
        " both ",
        "  ",
        "<script>alert(1)</script>",
        "[x](javascript:1)",
        "line\nbreak",
        "www.evil.example",
        ":material/home:",
        "$x$",
        "\\",
        "*a*",
    ],
)
def test_code_shows_text_exactly(s: str) -> None:
    out = code(s)
    parsed = _rendered(out)
    assert [t for t, _ in parsed.tags] == ["p", "code"], (s, out)
    text = "".join(parsed.text).strip("\n")
    assert text.replace(WORD_JOINER, "") == s.replace("\n", " "), (s, out, text)


def test_code_of_nothing_is_nothing() -> None:
    assert code(None) == "" and code("") == ""


# -- in a real browser ------------------------------------------------------------------------
_BROWSER_APP = """
import json, sys
sys.path.insert(0, {root!r})
import streamlit as st
from hpdash.markup import code, escape
cases = json.load(open({cases!r}, encoding="utf-8"))
st.title("markup")
for i, s in enumerate(cases):
    with st.container(key=f"md{{i}}"):
        st.markdown(escape(s))
    with st.container(key=f"emoji{{i}}"):  # a shortcode of the page's own loads remark-emoji
        st.markdown(":+1: " + escape(s))
    with st.container(key=f"caption{{i}}"):
        st.caption(escape(s))
    with st.container(key=f"label{{i}}"):
        st.checkbox(escape(s), key=f"box{{i}}")
    with st.container(key=f"code{{i}}"):
        st.markdown(code(s))
with st.container(key="unjoined"):  # the same escaping without the word joiners
    st.markdown(escape("www.evil.example http://evil.example a@evil.example").replace({wj!r}, ""))
"""

_PROBE = """(sel) => { const e = document.querySelector(sel);
    return {text: e.textContent, links: e.querySelectorAll('a').length,
            images: e.querySelectorAll('img').length, math: e.querySelectorAll('.katex').length}; }"""


@pytest.mark.e2e
def test_escape_and_code_in_streamlit(browser, tmp_path) -> None:
    """Streamlit's own renderer (remark-gfm, remark-emoji, directives, math) shows escaped and
    code text exactly, with no link, image or formula; without the word joiners its text pass
    does link www./http:// and e-mail addresses, which is why they are there."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    cases = [s for s in HOSTILE if s.strip()] + [
        "go to www.evil.example now",
        "mail a.b@evil.example",
        ":smile: :+1:",
        "$x^2$ math",
        ":red[red] text",
        ":material/home: icon",
        "![img](http://127.0.0.1:9/x.png)",
    ]
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    root = str(Path(__file__).resolve().parents[1])
    app = tmp_path / "app.py"
    app.write_text(_BROWSER_APP.format(root=root, cases=str(tmp_path / "cases.json"), wj=WORD_JOINER), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    context = None
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, (tmp_path / "streamlit.log").read_text()
                time.sleep(0.3)
        context = browser.new_context()
        page = context.new_page()
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if f":{port}/" not in r.url else None)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector(".st-key-unjoined p", timeout=60_000)
        # Widgets render after the first paint and remark-emoji is loaded lazily: wait until
        # every box shows text and every :+1: prefix has become the emoji.
        page.wait_for_function(
            """(n) => { const boxes = [...document.querySelectorAll('[class*="st-key-"]')];
                const emoji = boxes.filter(e => /st-key-emoji/.test(e.className));
                return boxes.length >= 5 * n && boxes.every(e => e.textContent.trim() !== '')
                    && emoji.every(e => e.textContent.trim().startsWith('\U0001f44d')); }""",
            arg=len(cases),
            timeout=60_000,
        )

        def shown(text: str) -> str:
            return re.sub(r"\s+", " ", text.replace(WORD_JOINER, "")).strip()

        problems = []
        for i, case in enumerate(cases):
            want = shown(case.translate(CONTROLS))
            for kind in ("md", "emoji", "caption", "label", "code"):
                got = page.evaluate(_PROBE, f".st-key-{kind}{i}")
                text = shown(got["text"])
                if kind == "emoji":
                    text = text.removeprefix("\U0001f44d").strip()
                if got["links"] or got["images"] or got["math"] or text != want:
                    problems.append((kind, case, text, got))
        assert problems == [], problems[:5]
        assert outside == [], outside
        unjoined = page.evaluate(_PROBE, ".st-key-unjoined")
        assert unjoined["links"] == 3, unjoined  # the word joiners are what stops these links
    finally:
        if context is not None:
            context.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
