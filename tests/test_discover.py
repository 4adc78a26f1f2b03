"""Discovery of the files to index, and reading one of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memwal.discover import Discovery, FoundFile, LoadedText, Skipped, discover, load_text


def write(path: Path, text: str | bytes = "text\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def names(found: Discovery, root: Path) -> list[str]:
    base = root.resolve()
    return [Path(f.source_file).relative_to(base).as_posix() for f in found.files]


def reasons(found: Discovery) -> dict[str, str]:
    return {s.path: s.reason for s in found.skipped}


def found_file(path: Path) -> FoundFile:
    st = path.stat()
    resolved = path.resolve()
    return FoundFile(resolved, str(resolved), st.st_size, st.st_mtime_ns)


# --- walking -----------------------------------------------------------------------------------

def test_walk_lists_supported_files_sorted_with_resolved_paths_size_and_mtime(tmp_path):
    write(tmp_path / "b.md", "bb")
    write(tmp_path / "a.txt", "a")
    write(tmp_path / "sub" / "c.MARKDOWN")
    found = discover([tmp_path])
    assert names(found, tmp_path) == ["a.txt", "b.md", "sub/c.MARKDOWN"]
    b = found.files[1]
    assert b.path.is_absolute() and b.source_file == str(b.path) == str((tmp_path / "b.md").resolve())
    assert b.size == 2 and b.mtime_ns == (tmp_path / "b.md").stat().st_mtime_ns
    assert found.skipped == () and found.ignored == 0


def test_unsupported_suffixes_are_counted_as_ignored(tmp_path):
    write(tmp_path / "keep.md")
    write(tmp_path / "image.png", b"\x89PNG")
    write(tmp_path / "deep" / "script.py")
    write(tmp_path / "Makefile")
    found = discover([tmp_path])
    assert names(found, tmp_path) == ["keep.md"]
    assert found.ignored == 3


def test_ignore_patterns_exclude_files_and_prune_directories(tmp_path, monkeypatch):
    write(tmp_path / "keep.md")
    write(tmp_path / "draft.md")
    write(tmp_path / "notes" / "draft.md")
    write(tmp_path / "build" / "out.md")
    write(tmp_path / "notes" / "build" / "out.md")
    walked = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: walked.append(Path(p).name) or real_scandir(p))

    found = discover([tmp_path], ignore=["draft.md", "build/"])

    assert names(found, tmp_path) == ["keep.md"]
    assert found.ignored == 2  # the two drafts; pruned directories are never looked into
    assert "build" not in walked


def test_the_roots_gitignore_is_honoured_and_configured_patterns_can_override_it(tmp_path):
    write(tmp_path / ".gitignore", "# comment\n*.txt\nprivate/\n")
    write(tmp_path / "a.md")
    write(tmp_path / "b.txt")
    write(tmp_path / "wanted.txt")
    write(tmp_path / "private" / "secret.md")
    found = discover([tmp_path], ignore=["!wanted.txt"])
    assert names(found, tmp_path) == ["a.md", "wanted.txt"]
    assert found.ignored == 2  # b.txt and .gitignore itself (unsupported suffix)


def test_ignore_patterns_are_relative_to_the_root(tmp_path):
    write(tmp_path / "top.md")
    write(tmp_path / "sub" / "top.md")
    found = discover([tmp_path], ignore=["/top.md"])
    assert names(found, tmp_path) == ["sub/top.md"]


def test_git_directories_are_never_walked(tmp_path):
    write(tmp_path / ".git" / "description.md")
    write(tmp_path / "sub" / ".git" / "x.txt")
    write(tmp_path / "real.md")
    found = discover([tmp_path])
    assert names(found, tmp_path) == ["real.md"]


def test_too_large_files_are_skipped_with_their_size(tmp_path):
    write(tmp_path / "small.md", "x" * 10)
    big = write(tmp_path / "big.md", "x" * 11)
    found = discover([tmp_path], max_file_bytes=10)
    assert names(found, tmp_path) == ["small.md"]
    (skipped,) = found.skipped
    assert (skipped.path, skipped.reason) == (str(big.resolve()), "too_large")
    assert "11" in skipped.detail


def test_a_missing_root_is_not_found(tmp_path):
    found = discover([tmp_path / "nope"])
    assert found.files == ()
    assert found.skipped == (Skipped(str(tmp_path / "nope"), "not_found", found.skipped[0].detail),)


def test_a_file_root_is_taken_whatever_the_ignore_patterns_and_an_unsupported_one_is_reported(tmp_path):
    note = write(tmp_path / "note.md")
    write(tmp_path / "data.csv")
    found = discover([note, tmp_path / "data.csv"], ignore=["*.md"])
    assert [f.source_file for f in found.files] == [str(note.resolve())]
    assert [(s.path, s.reason) for s in found.skipped] == [(str(tmp_path / "data.csv"), "unsupported_type")]


def test_a_fifo_named_as_a_root_is_reported_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.md")
    found = discover([tmp_path / "pipe.md"])
    assert found.files == ()
    assert [(s.reason, s.detail) for s in found.skipped] == [("not_a_regular_file", "a FIFO")]


def test_a_file_swapped_for_a_fifo_after_the_walk_is_skipped_without_blocking(tmp_path):
    note = write(tmp_path / "note.md")
    found = discover([tmp_path]).files[0]
    note.unlink()
    os.mkfifo(note)  # nobody will ever write to it: a blocking open would hang forever
    assert load_text(found) == Skipped(str(note.resolve()), "not_a_regular_file", "a FIFO")


def test_a_file_swapped_for_a_symlink_after_the_walk_is_not_followed(tmp_path):
    secret = write(tmp_path / "outside" / "secret.md", "# secret\n")
    note = write(tmp_path / "root" / "note.md")
    found = discover([tmp_path / "root"]).files[0]
    note.unlink()
    note.symlink_to(secret)
    assert load_text(found) == Skipped(found.source_file, "not_a_regular_file", "replaced by a symlink")


def test_a_file_that_grew_past_the_limit_since_the_walk_is_skipped(tmp_path):
    note = write(tmp_path / "note.md", "small\n")
    found = discover([tmp_path], max_file_bytes=100).files[0]
    note.write_text("x" * 1000)
    skipped = load_text(found, max_bytes=100)
    assert isinstance(skipped, Skipped) and skipped.reason == "too_large"


def test_a_file_reached_from_two_roots_is_listed_once(tmp_path):
    note = write(tmp_path / "docs" / "note.md")
    found = discover([tmp_path, note, tmp_path / "docs"])
    assert names(found, tmp_path) == ["docs/note.md"]


# --- symlinks ----------------------------------------------------------------------------------

def test_symlinks_to_outside_the_root_are_skipped(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "secret.md")
    write(root / "own.md")
    (root / "file_link.md").symlink_to(outside / "secret.md")
    (root / "dir_link").symlink_to(outside, target_is_directory=True)
    found = discover([root])
    assert names(found, root) == ["own.md"]
    assert reasons(found) == {str(root / "file_link.md"): "symlink_outside_root",
                              str(root / "dir_link"): "symlink_outside_root"}


def test_a_symlink_inside_the_root_is_followed_and_its_file_listed_once(tmp_path):
    write(tmp_path / "docs" / "a.md")
    (tmp_path / "alias.md").symlink_to(tmp_path / "docs" / "a.md")
    (tmp_path / "docs_alias").symlink_to(tmp_path / "docs", target_is_directory=True)
    (tmp_path / "docs" / "b.md").symlink_to("a.md")
    found = discover([tmp_path])
    assert names(found, tmp_path) == ["docs/a.md"]
    assert found.skipped == ()


def test_a_directory_symlink_loop_is_detected_without_hanging(tmp_path):
    write(tmp_path / "a" / "note.md")
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "knot.md").symlink_to(tmp_path / "knot.md")  # a link to itself: ELOOP on stat
    found = discover([tmp_path])
    assert names(found, tmp_path) == ["a/note.md"]
    assert reasons(found) == {str(tmp_path / "a" / "up"): "symlink_loop",
                              str(tmp_path / "a" / "self"): "symlink_loop",
                              str(tmp_path / "knot.md"): "symlink_loop"}


def test_a_dangling_symlink_is_not_found(tmp_path):
    write(tmp_path / "ok.md")
    (tmp_path / "gone.md").symlink_to(tmp_path / "deleted.md")
    found = discover([tmp_path])
    assert names(found, tmp_path) == ["ok.md"]
    assert reasons(found) == {str(tmp_path / "gone.md"): "not_found"}


def test_a_root_that_is_a_symlink_is_walked_at_its_target(tmp_path):
    write(tmp_path / "real" / "n.md")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    found = discover([tmp_path / "link"])
    assert [f.source_file for f in found.files] == [str((tmp_path / "real" / "n.md").resolve())]


def test_a_wide_tree_is_discovered_completely(tmp_path):
    # Speed is measured in benchmarks/, not asserted here: these machines are shared and noisy.
    for d in range(20):
        sub = tmp_path / f"d{d:02}"
        sub.mkdir()
        for i in range(50):
            (sub / f"f{i:03}.md").write_bytes(b"x")
    found = discover([tmp_path], ignore=["*.tmp", "cache/"])
    assert len(found.files) == 1000


# --- reading -----------------------------------------------------------------------------------

def test_load_text_reads_utf8_strips_the_bom_and_digests_the_raw_bytes(tmp_path):
    import hashlib
    raw = "\ufeffcafé\n".encode()
    loaded = load_text(found_file(write(tmp_path / "a.md", raw)))
    assert loaded == LoadedText("café\n", hashlib.sha256(raw).hexdigest(), replaced=False)


def test_a_nul_byte_makes_a_file_binary(tmp_path):
    path = write(tmp_path / "a.txt", b"looks like text\x00but is not")
    loaded = load_text(found_file(path))
    assert isinstance(loaded, Skipped)
    assert (loaded.path, loaded.reason) == (str(path.resolve()), "binary")


def test_utf16_text_is_binary_too(tmp_path):
    loaded = load_text(found_file(write(tmp_path / "a.txt", "hello".encode("utf-16"))))
    assert isinstance(loaded, Skipped) and loaded.reason == "binary"


def test_invalid_utf8_is_replaced_and_flagged(tmp_path):
    loaded = load_text(found_file(write(tmp_path / "a.md", b"ok \xff\xfe bad \xc3")))
    assert isinstance(loaded, LoadedText)
    assert loaded.replaced
    assert loaded.text.startswith("ok \ufffd") and loaded.text.endswith("\ufffd")


def test_a_file_deleted_after_discovery_is_not_found(tmp_path):
    path = write(tmp_path / "a.md")
    (found,) = discover([tmp_path]).files
    path.unlink()
    loaded = load_text(found)
    assert isinstance(loaded, Skipped)
    assert (loaded.path, loaded.reason) == (found.source_file, "not_found")
    assert loaded.detail


def test_a_file_that_became_a_directory_is_skipped_as_not_a_regular_file(tmp_path):
    path = write(tmp_path / "a.md")
    (found,) = discover([tmp_path]).files
    path.unlink()
    path.mkdir()
    loaded = load_text(found)
    assert isinstance(loaded, Skipped) and (loaded.reason, loaded.detail) == ("not_a_regular_file",
                                                                              "a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_unreadable(tmp_path):
    path = write(tmp_path / "a.md")
    (found,) = discover([tmp_path]).files
    path.chmod(0)
    try:
        loaded = load_text(found)
    finally:
        path.chmod(0o644)
    assert isinstance(loaded, Skipped) and loaded.reason == "unreadable"
