"""Split one markdown or plain-text document into chunks, each with its real line range.

Pure: text in, chunks out, no I/O. The steps, in order:

1. Normalise: NFC, a leading BOM dropped, and LF / CRLF / lone CR all end a line, so line
   numbers are the ones an editor shows.
2. Markdown only: a leading `---` front-matter block is removed and its `tags:` parsed.
3. Sections: markdown splits at ATX headings outside code fences; plain text at blank lines.
4. Oversized sections are split at paragraphs, then sentences, then by characters.
5. Tiny pieces are merged into a neighbour (see `chunk_text` for the exact rule).

From step 3 on everything is a character span of one "\\n"-joined string of the document, so a
split or merged piece is always a slice of the text and its line numbers come from one lookup.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable

MARKDOWN_SUFFIXES = (".md", ".markdown")

_EOL = re.compile(r"\r\n|\r|\n")
# ATX heading: up to 3 spaces of indent, 1-6 '#', then a space/tab or the end of the line.
_ATX = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)(.*)")
_ATX_CLOSING = re.compile(r"(?:^|[ \t])#+$")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
# End of a sentence: terminal punctuation, optional closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_TAGS_KEY = re.compile(r"tags[ \t]*:(.*)")
_LIST_ITEM = re.compile(r"[ \t]*-[ \t]+(.*)")


@dataclass(frozen=True)
class Chunk:
    """One indexable piece of a file."""

    content: str  # NFC, surrounding blank lines (and trailing whitespace) removed, "\n" line ends
    content_hash: str  # content_hash(content)
    start_line: int  # 1-based, inclusive, in the original text
    end_line: int  # 1-based, inclusive
    heading_path: tuple[str, ...]  # headings enclosing the chunk, outermost first
    tags: tuple[str, ...]  # from the file's front matter: sorted, deduplicated


def content_hash(text: str) -> str:
    """sha256 hex of the NFC form of `text`, UTF-8 encoded."""
    # surrogatepass: a lone surrogate cannot come from a decoded file, but must not crash us.
    normal = unicodedata.normalize("NFC", text)
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()


def is_markdown(path: str | os.PathLike[str]) -> bool:
    """Whether a file is chunked as markdown (`.md`, `.markdown`, any case); anything else is plain text."""
    return PurePath(path).suffix.lower() in MARKDOWN_SUFFIXES


def chunk_text(text: str, *, markdown: bool = True, max_chars: int = 1500,
               min_chars: int = 120) -> list[Chunk]:
    """Split `text` into chunks of at most `max_chars` characters, in document order.

    Sections: in markdown, each ATX heading outside a code fence starts a section that runs to
    the next one and contains its heading line; text before the first heading is a section with
    an empty heading path; setext headings are not recognised. Plain text has no front matter
    and one section per paragraph (run of non-blank lines).

    Split: a section longer than `max_chars` is cut into paragraphs (blank lines outside code
    fences), consecutive paragraphs are packed greedily while they fit; a paragraph still too
    long is cut at sentence ends (`.`, `!`, `?` then whitespace) and packed the same way; a
    sentence (or a code-fence block) still too long is cut at the last newline, else the last
    whitespace, else exactly at `max_chars`. So every chunk fits in `max_chars`, even one
    unbreakable word. Pieces of a split never overlap in text, but two may share a line when a
    cut falls inside it.

    Merge, two passes: (1) forward — a piece shorter than `min_chars` absorbs the following
    piece when that piece's heading path starts with its own (same section or a subsection) and
    the joined text fits in `max_chars`; the result keeps the first piece's start line and
    heading path and may absorb again while still short. (2) backward — a piece still shorter
    than `min_chars` joins the previous piece under the same conditions (the previous piece's
    path encloses it, the join fits). A joined chunk's content is the whole text between, so
    the heading path always names headings that enclose all of it.

    Identical content starting on the same line (a long repeated run cut into equal pieces)
    is kept once: the index keys chunks by (content_hash, start_line).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    text = unicodedata.normalize("NFC", text).removeprefix("\ufeff")
    doc = _Doc(_EOL.split(text))
    body, tags = _split_front_matter(doc.lines) if markdown else (0, ())
    fenced = [False] * body + (_fenced_lines(doc.lines[body:]) if markdown
                               else [False] * (len(doc.lines) - body))
    if markdown:
        sections = _glue_bare_headings(_markdown_sections(doc.lines, body, fenced), doc.lines)
    else:
        sections = [((), s, e, ()) for s, e in _blocks(doc.lines, body, len(doc.lines), fenced)]

    pieces: list[_Piece] = []
    for path, s, e, first_path in sections:
        span = doc.trim(doc.start(s), doc.end(e - 1))
        if span is None:
            continue
        if span[1] - span[0] <= max_chars:
            pieces.append(_Piece(first_path, *span))
        else:
            # The first piece holds the glued heading(s): only the outer path encloses it.
            spans = _split(doc, s, e, fenced, max_chars)
            pieces.extend(_Piece(first_path if n == 0 else path, a, b)
                          for n, (a, b) in enumerate(spans))
    return _to_chunks(doc, _merge_tiny(pieces, min_chars, max_chars), tags)


# --- the document as one string ---------------------------------------------------------------

class _Doc:
    """The lines joined by "\\n", with the offset each line starts at."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.text = "\n".join(lines)
        self.starts: list[int] = []
        pos = 0
        for line in lines:
            self.starts.append(pos)
            pos += len(line) + 1

    def start(self, i: int) -> int:
        return self.starts[i]

    def end(self, i: int) -> int:
        """Offset just past line `i`'s last character (its "\\n" is not included)."""
        return self.starts[i] + len(self.lines[i])

    def line_of(self, pos: int) -> int:
        """0-based line holding offset `pos`."""
        return bisect_right(self.starts, pos) - 1

    def trim(self, a: int, b: int) -> tuple[int, int] | None:
        """The span without surrounding whitespace, or None if nothing else is in it.

        A first line wholly inside the span keeps its indentation: it can matter (code).
        """
        text = self.text
        while b > a and text[b - 1].isspace():
            b -= 1
        first = a
        while first < b and text[first].isspace():
            first += 1
        if first == b:
            return None
        line_start = self.starts[self.line_of(first)]
        return (line_start if line_start >= a else first), b


@dataclass(frozen=True)
class _Piece:
    path: tuple[str, ...]
    a: int  # span [a, b) of _Doc.text, already trimmed
    b: int

    @property
    def size(self) -> int:
        return self.b - self.a


# --- markdown structure ----------------------------------------------------------------------

def _split_front_matter(lines: list[str]) -> tuple[int, tuple[str, ...]]:
    """The index of the first body line and the front matter's tags; (0, ()) without one."""
    if not lines or lines[0].rstrip() != "---":
        return 0, ()
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            return end + 1, _parse_tags(lines[1:end])
    return 0, ()  # never closed: a thematic break, not front matter


def _parse_tags(front: list[str]) -> tuple[str, ...]:
    """`tags: [a, b]`, `tags: a, b` or a `tags:` key followed by `- a` lines; not a YAML parser."""
    for i, line in enumerate(front):
        key = _TAGS_KEY.match(line)
        if key is None:
            continue
        value = key.group(1).strip()
        if value:
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            items = value.split(",")
        else:
            items = []
            for item in front[i + 1:]:
                listed = _LIST_ITEM.match(item)
                if listed:
                    items.append(listed.group(1))
                elif item.strip():
                    break
        return tuple(sorted({tag for tag in map(_unquote, items) if tag}))
    return ()


def _unquote(item: str) -> str:
    item = item.strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        item = item[1:-1].strip()
    return item


def _fenced_lines(lines: list[str]) -> list[bool]:
    """For each line, whether it is part of a fenced code block (its fence lines included).

    A fence closes only with the same character repeated at least as often; an unclosed fence
    runs to the end, as CommonMark has it.
    """
    inside = [False] * len(lines)
    fence: tuple[str, int] | None = None
    for i, line in enumerate(lines):
        if fence is None:
            opening = _FENCE_OPEN.match(line)
            # A backtick fence's info string may not contain a backtick (it is inline code then).
            if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                fence = (opening.group(1)[0], len(opening.group(1)))
                inside[i] = True
        else:
            inside[i] = True
            closing = _FENCE_CLOSE.fullmatch(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= fence[1]:
                fence = None
    return inside


def _markdown_sections(lines: list[str], body: int,
                       fenced: list[bool]) -> list[tuple[tuple[str, ...], int, int]]:
    """(heading path, first line, end line exclusive) of each section from line `body` on."""
    sections = []
    stack: list[tuple[int, str]] = []
    path: tuple[str, ...] = ()
    start = body
    for i in range(body, len(lines)):
        heading = None if fenced[i] else _ATX.match(lines[i])
        if heading is None:
            continue
        if i > start:
            sections.append((path, start, i))
        level = len(heading.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, _ATX_CLOSING.sub("", heading.group(2).strip()).strip()))
        path = tuple(title for _, title in stack)
        start = i
    if start < len(lines):
        sections.append((path, start, len(lines)))
    return sections


Section = tuple[tuple[str, ...], int, int, tuple[str, ...]]


def _glue_bare_headings(sections: list[tuple[tuple[str, ...], int, int]], lines: list[str]
                        ) -> list[Section]:
    """(heading path, first line, end line, path of its first piece) of each section.

    A section that is only its heading joins the section after it when that one is nested
    under it (a document's title before a long first section): a heading alone is not a chunk
    worth finding. The first piece of the joined section keeps the outer path (only the outer
    heading encloses its first line); later pieces take the inner one.
    """
    glued: list[Section] = []
    for path, s, e in sections:
        if glued:
            prev_path, prev_s, prev_e, prev_first = glued[-1]
            bare = prev_path != () and all(not line.strip() for line in lines[prev_s + 1:prev_e])
            if bare and _encloses(prev_path, path) and prev_path != path:
                glued[-1] = (path, prev_s, e, prev_first)
                continue
        glued.append((path, s, e, path))
    return glued


def _is_heading_only(doc: _Doc, a: int, b: int) -> bool:
    return all(_ATX.match(line) for line in doc.text[a:b].split("\n") if line.strip())


def _blocks(lines: list[str], s: int, e: int, fenced: list[bool]) -> list[tuple[int, int]]:
    """Runs of non-blank lines in [s, e) as (first, end exclusive); a fence's blank lines don't cut."""
    blocks = []
    begin = None
    for i in range(s, e):
        if lines[i].strip() or fenced[i]:
            if begin is None:
                begin = i
        elif begin is not None:
            blocks.append((begin, i))
            begin = None
    if begin is not None:
        blocks.append((begin, e))
    return blocks


# --- splitting and merging -------------------------------------------------------------------

def _split(doc: _Doc, s: int, e: int, fenced: list[bool], max_chars: int) -> list[tuple[int, int]]:
    """Spans of at most `max_chars` covering the text of lines [s, e)."""
    paragraphs: list[tuple[int, int]] = []
    for x, y in _blocks(doc.lines, s, e, fenced):
        a, b = doc.start(x), doc.end(y - 1)
        if paragraphs and not fenced[doc.line_of(paragraphs[-1][0])] and \
                _is_heading_only(doc, *paragraphs[-1]):
            paragraphs[-1] = (paragraphs[-1][0], b)  # a heading stays with the text it heads
        else:
            paragraphs.append((a, b))
    pieces = []
    for a, b in _pack(doc, paragraphs, max_chars):
        if b - a <= max_chars:
            pieces.append((a, b))
        elif any(fenced[i] for i in range(doc.line_of(a), doc.line_of(b - 1) + 1)):
            # Code has no sentences; cutting it at newlines keeps whole lines together.
            pieces.extend(_hard_split(doc, a, b, max_chars))
        else:
            for sa, sb in _pack(doc, _sentences(doc, a, b), max_chars):
                if sb - sa <= max_chars:
                    pieces.append((sa, sb))
                else:
                    pieces.extend(_hard_split(doc, sa, sb, max_chars))
    return pieces


def _pack(doc: _Doc, units: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    """Join consecutive spans greedily while the trimmed join fits; a unit too big stays alone."""
    packed: list[tuple[int, int]] = []
    for a, b in units:
        if packed:
            joined = doc.trim(packed[-1][0], b)
            if joined is not None and joined[1] - joined[0] <= max_chars:
                packed[-1] = joined
                continue
        span = doc.trim(a, b)
        if span is not None:
            packed.append(span)
    return packed


def _sentences(doc: _Doc, a: int, b: int) -> list[tuple[int, int]]:
    cuts = [m.end() for m in _SENTENCE_END.finditer(doc.text, a, b)]
    bounds = [a, *cuts, b]
    return [(x, y) for x, y in zip(bounds, bounds[1:]) if y > x]


def _hard_split(doc: _Doc, a: int, b: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut at the last newline that fits, else the last whitespace, else at `max_chars` exactly."""
    text = doc.text
    pieces = []
    span = doc.trim(a, b)
    while span is not None and span[1] - span[0] > max_chars:
        a, b = span
        limit = a + max_chars
        cut = text.rfind("\n", a + 1, limit + 1)
        if cut < 0:
            cut = next((i for i in range(limit, a, -1) if text[i].isspace()), limit)
        piece = doc.trim(a, cut)
        if piece is not None:
            pieces.append(piece)
        span = doc.trim(cut, b)
    if span is not None:
        pieces.append(span)
    return pieces


def _encloses(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    return inner[:len(outer)] == outer


def _merge_pass(pieces: list[_Piece], min_chars: int, max_chars: int,
                small: Callable[[_Piece, _Piece], _Piece]) -> list[_Piece]:
    """Join each piece to the one before when `small(prev, piece)` is under min_chars, the
    earlier one encloses the later one's heading path, and the joined text fits."""
    merged: list[_Piece] = []
    for piece in pieces:
        prev = merged[-1] if merged else None
        if (prev is not None and small(prev, piece).size < min_chars
                and _encloses(prev.path, piece.path) and piece.b - prev.a <= max_chars):
            merged[-1] = _Piece(prev.path, prev.a, piece.b)
        else:
            merged.append(piece)
    return merged


def _merge_tiny(pieces: list[_Piece], min_chars: int, max_chars: int) -> list[_Piece]:
    # Forward: a tiny piece absorbs the next; backward: a still-tiny piece joins the previous.
    forward = _merge_pass(pieces, min_chars, max_chars, lambda prev, piece: prev)
    return _merge_pass(forward, min_chars, max_chars, lambda prev, piece: piece)


def _to_chunks(doc: _Doc, pieces: list[_Piece], tags: tuple[str, ...]) -> list[Chunk]:
    chunks = []
    seen: set[tuple[str, int]] = set()
    for piece in pieces:
        # Normalise again: a slice of an NFC string is not always NFC itself.
        content = unicodedata.normalize("NFC", doc.text[piece.a:piece.b])
        digest = content_hash(content)
        start = doc.line_of(piece.a) + 1
        if (digest, start) in seen:
            continue
        seen.add((digest, start))
        chunks.append(Chunk(content, digest, start, doc.line_of(piece.b - 1) + 1, piece.path, tags))
    return chunks
