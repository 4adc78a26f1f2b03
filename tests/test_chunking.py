"""The chunker: sections, line numbers, front matter, splitting and merging."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from memwal.chunking import Chunk, chunk_text, content_hash, is_markdown

EOL = re.compile(r"\r\n|\r|\n")


def editor_lines(text: str) -> list[str]:
    return EOL.split(text)


def lines_of(text: str, chunk: Chunk) -> str:
    """The original lines a chunk claims, joined the way chunk content is (trailing space off)."""
    picked = "\n".join(editor_lines(text)[chunk.start_line - 1:chunk.end_line])
    return unicodedata.normalize("NFC", picked).rstrip()


def sentence(i: int) -> str:
    return f"Sentence number {i} says something about the topic at a moderate length."


# --- markdown structure ------------------------------------------------------------------------

def test_headings_split_sections_and_the_heading_line_opens_its_chunk():
    text = "# One\nalpha\n# Two\nbeta\n"
    chunks = chunk_text(text, min_chars=0)
    assert [c.content for c in chunks] == ["# One\nalpha", "# Two\nbeta"]
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 2), (3, 4)]


def test_nested_headings_give_heading_paths_and_a_new_top_heading_pops_the_stack():
    text = "\n".join([
        "# Guide", "g", "## Install", "i", "### Linux", "l", "## Use", "u", "# Other", "o",
        "#### Deep", "d",
    ])
    paths = [c.heading_path for c in chunk_text(text, min_chars=0)]
    assert paths == [
        ("Guide",), ("Guide", "Install"), ("Guide", "Install", "Linux"), ("Guide", "Use"),
        ("Other",), ("Other", "Deep"),
    ]


def test_preamble_before_the_first_heading_has_an_empty_path():
    chunks = chunk_text("intro\n\n# H\nbody", min_chars=0)
    assert [(c.heading_path, c.content) for c in chunks] == [((), "intro"), (("H",), "# H\nbody")]


def test_atx_closing_hashes_are_not_part_of_the_title_and_hash_without_space_is_not_a_heading():
    chunks = chunk_text("# Title ##\nx\n#hashtag\n####### seven\n    # indented code", min_chars=0)
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Title",)


def test_headings_inside_backtick_and_tilde_fences_are_not_split_points():
    text = "\n".join([
        "# Real", "```python", "# comment, not a heading", "```",
        "~~~", "## also not a heading", "~~~", "tail",
    ])
    chunks = chunk_text(text, min_chars=0)
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Real",)
    assert (chunks[0].start_line, chunks[0].end_line) == (1, 8)


def test_a_fence_closes_only_with_the_same_character_and_at_least_its_length():
    text = "\n".join([
        "# Real", "````", "```", "# inside: shorter fence does not close", "~~~~",
        "# inside: other character does not close", "````", "# After",
    ])
    chunks = chunk_text(text, min_chars=0)
    assert [c.heading_path for c in chunks] == [("Real",), ("After",)]
    assert chunks[0].end_line == 7


def test_an_unclosed_fence_runs_to_the_end():
    chunks = chunk_text("# A\n```\n# not a heading\n", min_chars=0)
    assert [c.heading_path for c in chunks] == [("A",)]


def test_plain_text_has_no_headings_and_splits_at_paragraphs():
    text = "# not a heading\nstill first\n\nsecond paragraph\n"
    chunks = chunk_text(text, markdown=False, min_chars=0)
    assert [c.content for c in chunks] == ["# not a heading\nstill first", "second paragraph"]
    assert all(c.heading_path == () for c in chunks)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 2), (4, 4)]


def test_is_markdown_by_suffix():
    assert is_markdown("a/b.md") and is_markdown("B.MARKDOWN") and is_markdown("x.Md")
    assert not is_markdown("notes.txt") and not is_markdown("README")


# --- line endings and line numbers -------------------------------------------------------------

def test_crlf_and_lone_cr_give_the_same_chunks_as_lf():
    lf = "---\ntags: [x]\n---\n# A\n\nalpha line\n\n## B\nbeta\n\n\ngamma\n"
    expected = chunk_text(lf, min_chars=0)
    assert len(expected) == 2
    for ending in ("\r\n", "\r"):
        assert chunk_text(lf.replace("\n", ending), min_chars=0) == expected


def test_line_numbers_are_one_based_and_point_at_the_real_lines():
    text = "\r\n\r\n# Title\r\n\r\nbody one\r\n\r\n\r\n## Sub\rsub body\n\n"
    chunks = chunk_text(text, min_chars=0)
    assert [(c.start_line, c.end_line) for c in chunks] == [(3, 5), (8, 9)]
    for chunk in chunks:
        assert chunk.content == lines_of(text, chunk)


def test_empty_and_whitespace_only_text_give_no_chunks():
    for text in ("", "\n", "   \n\t\n", "\r\n\r\n", "\r \r"):
        assert chunk_text(text) == []
        assert chunk_text(text, markdown=False) == []


# --- front matter ------------------------------------------------------------------------------

def test_front_matter_is_excluded_and_inline_tags_parsed():
    text = "---\ntitle: Notes\ntags: [beta, alpha, beta]\n---\n# Notes\nbody\n"
    chunks = chunk_text(text, min_chars=0)
    assert len(chunks) == 1
    assert chunks[0].content == "# Notes\nbody"
    assert chunks[0].start_line == 5
    assert chunks[0].tags == ("alpha", "beta")


def test_front_matter_tags_without_brackets_and_quoted():
    chunks = chunk_text("---\ntags: 'b', \"a\" ,c\n---\ntext\n")
    assert chunks[0].tags == ("a", "b", "c")


def test_front_matter_block_list_tags_apply_to_every_chunk():
    text = "---\ntags:\n  - zeta\n  - \"eta\"\n- theta\nauthor: me\n---\n# A\na\n# B\nb\n"
    chunks = chunk_text(text, min_chars=0)
    assert len(chunks) == 2
    assert all(c.tags == ("eta", "theta", "zeta") for c in chunks)


def test_a_file_of_only_front_matter_gives_no_chunks():
    assert chunk_text("---\ntags: [a]\n---\n") == []
    assert chunk_text("---\ntags: [a]\n---\n\n   \n") == []


def test_unclosed_front_matter_is_ordinary_text():
    chunks = chunk_text("---\ntags: [a]\nno end\n", min_chars=0)
    assert len(chunks) == 1
    assert chunks[0].start_line == 1 and chunks[0].tags == ()
    assert chunks[0].content.startswith("---")


def test_plain_text_has_no_front_matter():
    chunks = chunk_text("---\ntags: [a]\n---\ntext\n", markdown=False, min_chars=0)
    assert chunks[0].tags == () and chunks[0].start_line == 1


# --- hashing -----------------------------------------------------------------------------------

def test_nfc_and_nfd_text_give_the_same_content_and_hash():
    composed = "# Café\n\nUn café crème, s'il vous plaît.\n"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert chunk_text(composed) == chunk_text(decomposed)
    assert content_hash(composed) == content_hash(decomposed)
    chunk = chunk_text(decomposed)[0]
    assert unicodedata.is_normalized("NFC", chunk.content)
    assert chunk.heading_path == ("Café",)


def test_content_hash_is_sha256_of_nfc_utf8():
    import hashlib
    assert content_hash("cafe\u0301") == hashlib.sha256("café".encode()).hexdigest()


def test_a_leading_bom_is_not_content():
    assert chunk_text("\ufeff# A\nx") == chunk_text("# A\nx")


# --- splitting ---------------------------------------------------------------------------------

def assert_well_formed_split(text: str, chunks: list[Chunk], max_chars: int) -> None:
    lines = editor_lines(text)
    for chunk in chunks:
        assert len(chunk.content) <= max_chars
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.content in lines_of(text, chunk)
    for before, after in zip(chunks, chunks[1:]):
        assert before.end_line <= after.start_line


def test_oversized_section_splits_at_paragraphs_with_exact_line_ranges():
    paragraphs = [" ".join(sentence(p * 10 + i) for i in range(4)) for p in range(6)]
    text = "# Big\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunk_text(text, max_chars=700, min_chars=0)
    assert len(chunks) > 1
    assert_well_formed_split(text, chunks, 700)
    for before, after in zip(chunks, chunks[1:]):
        assert before.end_line < after.start_line  # whole paragraphs: no line shared
    for chunk in chunks:
        assert chunk.content == lines_of(text, chunk)  # whole lines, blank lines between kept
        assert chunk.heading_path == ("Big",)
    assert chunks[0].content.startswith("# Big")
    # Nothing lost: every paragraph appears whole in exactly one chunk.
    for paragraph in paragraphs:
        assert sum(paragraph in c.content for c in chunks) == 1


def test_an_oversized_paragraph_splits_at_sentence_ends():
    one_line = " ".join(sentence(i) for i in range(30))
    text = "# Long\n" + one_line + "\n"
    chunks = chunk_text(text, max_chars=300, min_chars=0)
    assert len(chunks) > 1
    assert_well_formed_split(text, chunks, 300)
    for chunk in chunks[1:]:
        assert chunk.content.startswith("Sentence number")
        assert chunk.content.endswith(".")
        assert (chunk.start_line, chunk.end_line) == (2, 2)
    assert " ".join(c.content for c in chunks) == "# Long\n" + one_line


def test_sentences_on_their_own_lines_split_into_non_overlapping_line_ranges():
    body = "\n".join(sentence(i) for i in range(30))  # one paragraph, a sentence per line
    text = "Intro.\n\n" + body + "\n"
    chunks = chunk_text(text, markdown=False, max_chars=300, min_chars=0)
    assert_well_formed_split(text, chunks, 300)
    for before, after in zip(chunks, chunks[1:]):
        assert before.end_line < after.start_line
    for chunk in chunks:
        assert chunk.content == lines_of(text, chunk)


def test_a_sentence_without_breaks_is_hard_split_at_whitespace_then_characters():
    words = " ".join(f"word{i}" for i in range(200))
    chunks = chunk_text(words, markdown=False, max_chars=100, min_chars=0)
    assert_well_formed_split(words, chunks, 100)
    assert " ".join(c.content for c in chunks) == words  # cuts fell on the spaces

    unbreakable = "".join(chr(ord("a") + i % 26) for i in range(251))
    chunks = chunk_text(unbreakable, markdown=False, max_chars=100, min_chars=0)
    assert [len(c.content) for c in chunks] == [100, 100, 51]
    assert "".join(c.content for c in chunks) == unbreakable


def test_identical_pieces_on_one_line_are_kept_once():
    # The index keys chunks by (content_hash, start_line): two equal pieces of a line would clash.
    chunks = chunk_text("z" * 300, markdown=False, max_chars=100, min_chars=0)
    assert len(chunks) == 1 and chunks[0].content == "z" * 100


def test_an_oversized_code_fence_is_cut_between_lines_not_at_blank_lines_inside_it():
    code = "\n".join(f"x{i} = compute({i}).  # step" for i in range(60))
    code = code.replace("x30 =", "\nx30 =")  # a blank line inside the fence
    text = "# Code\n\n```python\n" + code + "\n```\n"
    chunks = chunk_text(text, max_chars=400, min_chars=0)
    assert len(chunks) > 1
    assert_well_formed_split(text, chunks, 400)
    for chunk in chunks:
        assert chunk.content == lines_of(text, chunk)
        assert chunk.heading_path == ("Code",)


# --- merging -----------------------------------------------------------------------------------

def test_a_tiny_section_merges_into_a_following_subsection():
    text = "# Guide\n\n## Install\n" + "Install it like this. " * 10 + "\n"
    chunks = chunk_text(text, min_chars=120)
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Guide",)
    assert (chunks[0].start_line, chunks[0].end_line) == (1, 4)
    assert chunks[0].content == lines_of(text, chunks[0])


def test_a_tiny_section_does_not_merge_into_a_sibling_section():
    text = "# A\nshort\n# B\n" + "B has a lot to say. " * 10
    chunks = chunk_text(text, min_chars=120)
    assert [c.heading_path for c in chunks] == [("A",), ("B",)]


def test_a_tiny_last_piece_merges_back_into_the_enclosing_previous_piece():
    text = "# A\n" + "A has a lot to say. " * 10 + "\n## A.1\nshort\n# B\n" + "B says much. " * 12
    chunks = chunk_text(text, min_chars=120)
    assert [c.heading_path for c in chunks] == [("A",), ("B",)]
    assert chunks[0].content.endswith("## A.1\nshort")
    assert (chunks[0].start_line, chunks[0].end_line) == (1, 4)


def test_merging_never_exceeds_max_chars():
    text = "\n\n".join(f"para {i}" for i in range(50))
    chunks = chunk_text(text, markdown=False, max_chars=40, min_chars=30)
    assert all(len(c.content) <= 40 for c in chunks)
    assert all(len(c.content) >= 30 for c in chunks[:-1])
    assert_well_formed_split(text, chunks, 40)


def test_repeated_boilerplate_gives_equal_contents_on_different_lines():
    text = "# Note\nsame\n# Note\nsame\n"
    chunks = chunk_text(text, min_chars=0)
    assert chunks[0].content_hash == chunks[1].content_hash
    assert chunks[0].start_line != chunks[1].start_line


def test_chunking_is_deterministic():
    text = "---\ntags: [a]\n---\n" + "\n\n".join(
        f"## S{i}\n" + " ".join(sentence(j) for j in range(i)) for i in range(15))
    assert chunk_text(text, max_chars=500) == chunk_text(text, max_chars=500)


# --- property ----------------------------------------------------------------------------------

line_text = st.sampled_from(["# H", "## H2", "```", "~~~", "---", "tags: [a, b]", "", " ", "text.",
                             "A sentence. Another!", "café", "cafe\u0301", "x" * 40])
documents = st.one_of(
    st.text(),
    st.lists(st.one_of(line_text, st.text(max_size=30)), max_size=40).flatmap(
        lambda lines: st.sampled_from(["\n", "\r\n", "\r"]).map(lambda eol: eol.join(lines))),
)


@settings(max_examples=300, deadline=None)
@given(text=documents, markdown=st.booleans(), max_chars=st.integers(1, 200),
       min_chars=st.integers(0, 100))
def test_any_text_chunks_into_valid_ordered_chunks(text, markdown, max_chars, min_chars):
    chunks = chunk_text(text, markdown=markdown, max_chars=max_chars, min_chars=min_chars)
    n_lines = len(editor_lines(text))
    keys = set()
    for chunk in chunks:
        assert chunk.content_hash == content_hash(chunk.content)
        assert 1 <= chunk.start_line <= chunk.end_line <= n_lines
        assert chunk.content.strip() and len(chunk.content) <= max_chars
        keys.add((chunk.content_hash, chunk.start_line))
    assert len(keys) == len(chunks)
    starts = [c.start_line for c in chunks]
    assert starts == sorted(starts)


def test_a_title_before_a_long_first_section_is_not_a_chunk_of_its_own():
    # Before: "# Title" became a chunk alone whenever the first section was too long to join.
    text = "# Title\n\n## Part one\n\n" + "This is a sentence about pears. " * 80 + "\n"
    chunks = chunk_text(text, max_chars=500, min_chars=120)
    assert not any(all(line.startswith("#") for line in c.content.splitlines() if line.strip())
                   for c in chunks)
    assert chunks[0].content.startswith("# Title\n\n## Part one\n\nThis is a sentence")
    assert chunks[0].heading_path == ("Title",) and chunks[1].heading_path == ("Title", "Part one")
    assert_well_formed_split(text, chunks, 500)


def test_a_heading_before_an_oversized_code_block_stays_with_its_code():
    text = "# Code\n\n```\n" + "x = compute(1)\n" * 60 + "```\n"
    chunks = chunk_text(text, max_chars=300, min_chars=120)
    assert chunks[0].content.startswith("# Code\n\n```")
    assert all(len(c.content) <= 300 for c in chunks)
