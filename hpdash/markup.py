"""User text in Streamlit's Markdown, and study notes as safe HTML. No Streamlit import.

Streamlit renders Markdown almost everywhere text appears (``st.markdown``, ``st.caption``,
``st.info``/``warning``/``error``/``success``, titles, ``st.toast``, widget labels, radio
options, tabs, expander and page-link labels), with more than CommonMark on top: GitHub
autolinks (``www.x.com``, ``https://x``, ``a@b.co``), images, ``:red[...]`` directives,
``:material/icon:`` and emoji shortcodes, and ``$...$`` LaTeX. A column name, study name,
fail reason or query value put there as is can fetch a remote image or show a phishing link.

* :func:`escape` makes any text plain text inside that Markdown.
* :func:`code` shows text as inline code (nothing inside a code span is Markdown).
* :func:`note_html` renders a study note (the user's own Markdown) to HTML that has no raw
  HTML, no images (their alt text instead) and only ``http``/``https``/``mailto`` links.
* :func:`clip` cuts user text (a value quoted in an error, a loaded spec's name) to
  ``MAX_SHOWN_CHARS``, so no message the server sends a page grows with what a user typed or
  uploaded (Streamlit refuses a message over ``server.maxMessageSize``, 200 MB, and a page
  drawing megabytes of text is unusable long before).

Streamlit's autolinks come from two passes (remark-gfm): one over the Markdown source, which
a backslash escape stops, and one over the *decoded* text after escapes are resolved, which
no escape can stop. :func:`escape` therefore also puts an invisible WORD JOINER (U+2060)
where that second pass would start a link or an emoji (``www|.``, ``http|://``, ``x|@y``,
``:|smile:``); the text reads and wraps the same.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

#: Invisible, zero-width, and not a line-break opportunity: splits a pattern without showing.
WORD_JOINER = "\u2060"

# Every ASCII punctuation character: CommonMark lets a backslash escape each of them.
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# Of those, the ones that mean nothing inside one line of text (with every bracket, `<`, `:`,
# `/` (Streamlit finds ``:material/name:`` icons in the raw source) and emphasis character
# escaped): left as they are, so names such as ``iris-rf-tpe`` or
# ``0.25`` read the same in the Markdown source. A ``-`` or ``1.`` opening the text would start
# a list, so :func:`escape` escapes those there.
_PLAIN_INSIDE = frozenset("-.,;'\"?=%!")
_LIST_START = re.compile(r"^( *)(?:([-])|(\d{1,9})([.]))")

# C0 and C1 control characters (line breaks and tabs among them) and the Unicode line and
# paragraph separators all become one space.
_CONTROLS = {code: " " for code in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}

# Where the text pass of Streamlit's autolinks and emoji would start (its patterns use ASCII
# \w): "www" before ".", "http"/"https" before "://", an address character before "@", and the
# ":" opening ":name:".
_LINK_STARTS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=http)(?=://)|(?<=https)(?=://)|(?<=[-.\w+])(?=@)", re.ASCII)
_SHORTCODE_START = re.compile(r"(?<=:)(?=[\w+-][\w+-]*:)", re.ASCII)

# Link targets a note may keep, checked on markdown-it's normalised URL (entities decoded,
# then percent-encoded): an http(s) URL with a host, or a mailto address. Everything else
# (javascript:, data:, vbscript:, file:, relative links, schemes hidden by case, entities or
# control characters) is shown as text.
_SAFE_HREF = re.compile(r"^(?:https?://[^\s/?#\\]+|mailto:[^\s]+)", re.IGNORECASE)
_LINK_REL = "nofollow noopener noreferrer"

#: Notes longer than this are cut before rendering (with a notice): Markdown parsing of a
#: pathological megabyte is slow, and nobody reads a note that long.
MAX_NOTE_CHARS = 50_000

#: The most characters of one piece of user text a page shows (:func:`clip`): a few screens,
#: far below Streamlit's message limit.
MAX_SHOWN_CHARS = 5_000


def _one_line(text: Any) -> str:
    """``text`` as a string with every control character and line break turned into a space."""
    return ("" if text is None else str(text)).translate(_CONTROLS)


def clip(text: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` as a string of at most ``limit`` characters plus a notice: a longer one is cut
    there and ends with how much was left out (``"... (12,345 more characters)"``). ``None``
    gives ``""``. Cut before :func:`escape` or :func:`code`, never after (an escape would be
    split)."""
    plain = "" if text is None else str(text)
    if len(plain) <= limit:
        return plain
    return f"{plain[:limit]}... ({len(plain) - limit:,} more characters)"


def escape(text: Any) -> str:
    """``text`` as plain text inside Streamlit Markdown (``None`` gives ``""``).

    ASCII punctuation is backslash-escaped (all of it but ``-.,;'"?=%!``, which mean nothing
    inside a line, and those too where they would open a list), so no emphasis, link, image,
    HTML, heading, list, table, ``:directive[...]``, ``:shortcode:`` or ``$math$`` can start),
    line breaks and other control characters become spaces, a WORD JOINER goes where
    Streamlit's text-level autolink or emoji pass would start (see the module docstring), and
    spaces at either end are written as ``&#32;`` so they are neither stripped nor read as an
    indented code block. Use the result only where Streamlit renders Markdown: shown raw
    (``st.text``, a dataframe cell, ``st.code``) the backslashes would be visible.
    """
    plain = _one_line(text)
    if not plain:
        return ""
    plain = _LINK_STARTS.sub(WORD_JOINER, plain)
    plain = _SHORTCODE_START.sub(WORD_JOINER, plain)
    body = "".join("\\" + ch if ch in _ASCII_PUNCTUATION and ch not in _PLAIN_INSIDE else ch for ch in plain)
    body = _LIST_START.sub(lambda m: m.group(1) + ("\\-" if m.group(2) else m.group(3) + "\\."), body, count=1)
    stripped = body.strip(" ")
    if not stripped:
        return "&#32;" * len(body)
    lead = len(body) - len(body.lstrip(" "))
    trail = len(body) - len(body.rstrip(" "))
    return "&#32;" * lead + stripped + "&#32;" * trail


def code(text: Any) -> str:
    """``text`` as a Markdown inline code span, shown exactly (``None`` or ``""`` gives ``""``).

    The fence is one backtick longer than the longest run of backticks inside. The content is
    padded with a space on each side (CommonMark removes exactly one from each side) only where
    it must be: when it starts or ends with a backtick, or starts and ends with a space. Line
    breaks and control characters become spaces.
    Streamlit rewrites ``:material/`` to ``:material_`` in the raw source, even inside code,
    so a WORD JOINER after that ``:`` keeps the text as written.
    """
    plain = _one_line(text).replace(":material/", ":" + WORD_JOINER + "material/")
    if not plain:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", plain)), default=0)
    fence = "`" * (longest + 1)
    if not plain.strip(" "):  # only spaces: CommonMark keeps them as they are
        return f"{fence}{plain}{fence}"
    if plain.startswith("`") or plain.endswith("`") or (plain.startswith(" ") and plain.endswith(" ")):
        return f"{fence} {plain} {fence}"
    return f"{fence}{plain}{fence}"


def safe_href(url: str) -> bool:
    """Whether a note may link to ``url``: ``http(s)://host...`` or ``mailto:...`` only."""
    return bool(_SAFE_HREF.match(url or ""))


def _any_link(url: str) -> bool:
    """markdown-it's link check, made to accept every URL: each link and image token is
    checked by :func:`_safe_inline` instead, which shows an unsafe link as its text and an
    unsafe image as its alt text (markdown-it would show their whole Markdown source)."""
    return True


@lru_cache(maxsize=1)
def _note_parser() -> Any:
    """The Markdown parser for notes: CommonMark plus GFM tables and strikethrough, raw HTML
    off (shown as text), typographic replacements off; links are vetted after parsing."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _any_link  # type: ignore[method-assign]
    return md


def _safe_inline(children: list[Any], token_cls: Any, as_text: Any) -> list[Any]:
    """The inline tokens of a note with unsafe links unwrapped and images replaced.

    A link whose href is not :func:`safe_href` loses its ``<a>`` (its text stays); a kept link
    opens in a new tab with ``rel="nofollow noopener noreferrer"``. An image becomes its alt
    text (its address, as text, when it has none): never an ``<img>``, and never a link that
    would lead to the image's server.
    """
    out: list[Any] = []
    dropping: list[bool] = []  # one entry per open link: was its <a> removed?
    for token in children:
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            keep = safe_href(href)
            dropping.append(not keep)
            if keep:
                token.attrSet("rel", _LINK_REL)
                token.attrSet("target", "_blank")
                out.append(token)
        elif token.type == "link_close":
            removed = dropping.pop() if dropping else True
            if not removed:
                out.append(token)
        elif token.type == "image":
            text = token_cls("text", "", 0)
            text.content = as_text(token.children or []) or str(token.attrGet("src") or "")
            out.append(text)
        else:
            out.append(token)
    return out


def note_html(markdown_text: Any) -> str:
    """A study note (the user's Markdown) as HTML that is safe to show with ``st.html``.

    Raw HTML in the note is shown as text; links keep only ``http``, ``https`` and ``mailto``
    targets (anything else, including relative links and schemes disguised with case,
    entities or control characters, is plain text) and open in a new tab with
    ``rel="nofollow noopener noreferrer"``; images are never embedded (see
    :func:`_safe_inline`); tables and ``~~strikethrough~~`` are kept. Notes over
    ``MAX_NOTE_CHARS`` characters are cut there, with a notice at the end.

    The output must be safe by itself: ``st.html``'s DOMPurify removes scripts, event handlers
    and ``javascript:`` links but keeps ``<img>`` with a remote ``src`` and ``<style>`` (which
    can restyle the whole page), and with ``unsafe_allow_javascript=True`` it runs scripts.
    Pass it this function's result only, never text joined to it.
    """
    from markdown_it.token import Token

    text = "" if markdown_text is None else str(markdown_text)
    cut = len(text) > MAX_NOTE_CHARS
    if cut:
        text = text[:MAX_NOTE_CHARS]
    md = _note_parser()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)

    def as_text(children: list[Any]) -> str:
        return md.renderer.renderInlineAsText(children, md.options, env)

    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _safe_inline(token.children, Token, as_text)
    html = md.renderer.render(tokens, md.options, env)
    if cut:
        html += (
            f"<p><em>(The note is longer than {MAX_NOTE_CHARS:,} characters; only the "
            "first part is shown. Shorten it to see all of it.)</em></p>\n"
        )
    return html
