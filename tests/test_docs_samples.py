"""The code samples in README.md and docs/ run, and print what the pages say they print.

Each page is one test: its ```python blocks run in order, in one namespace, as one
script would (``__name__ == "__main__"``), in a fresh temporary working directory,
under a fresh default guard, in a context of its own; global state (the default guard,
logging, warnings filters, the working directory) is restored afterwards.

Conventions, written as HTML comments on the line just before a fence (Material renders
them invisibly):

- ``<!-- docs-test: skip (reason) -->`` before a ```python block: not run. For snippets
  that need a production server, the reader's own model or data, or are fragments by
  nature; the reason is required.
- ``<!-- docs-test: output -->`` before a ```text block that follows a block that runs
  (with only blank lines between them): the text must equal what that block printed,
  stdout and stderr together as a terminal shows them (the default audit sink's
  warnings go to stderr). Before comparing, template ids and other 32-digit hex ids are
  matched page-wide, one to one (the same id wherever the page shows the same id), and
  timestamps within a day of the wall clock are accepted as any timestamp; everything
  else is compared exactly, trailing spaces aside.
- ``<!-- docs-test: file NAME -->`` before any block: when the page gets there, the
  block is written to NAME in the working directory (the first block for NAME creates
  it, later ones append), which is on ``sys.path`` while the page runs. A python block
  written to a file is not run in the page's namespace.
- ``<!-- docs-test: run -->`` before a ```sh block: it is run with bash in the working
  directory (this interpreter's scripts first on ``PATH``) and must succeed.

A page that mentions ``FACES_DATABASE_URL`` gets it set to a real PostgreSQL server
with pgvector (the ``pg_uri`` fixture of the store tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import re
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import pytest

import purposeguard as pg

# The store tests' PostgreSQL server, for the pgvector samples (started only if asked for).
from tests.stores.conftest import pg_uri  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")
_SKIP = re.compile(r"^\s*skip\s+\((?P<reason>[^()]*\S[^()]*)\)\s*$")
_OUTPUT = re.compile(r"^\s*output\s*$")
_FILE = re.compile(r"^\s*file\s+(?P<name>[\w.-]+(?:/[\w.-]+)*)\s*$")
_RUN = re.compile(r"^\s*run\s*$")

_HEX_ID = r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])"
_TIME = r"(?<!\d)\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})?(?!\d)"
_TOKEN = re.compile(f"({_HEX_ID}|{_TIME})")
_IS_ID = re.compile(_HEX_ID)


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    lang: str
    code: str
    line: int  # 1-based line of the first line of code
    skip: str | None = None  # the reason, for a skipped python block
    output: bool = False  # a text block checked against the previous block's output
    file: str | None = None  # written to this file instead of being run
    run: bool = False  # a shell block that is run

    @property
    def runs(self) -> bool:
        return self.file is None and (
            (self.lang == "python" and self.skip is None) or (self.lang == "sh" and self.run)
        )


class MarkupError(AssertionError):
    """A docs-test marker that is malformed or stands where it means nothing."""


def parse(text: str, where: str) -> list[Block]:
    """The fenced blocks of *text*, with their docs-test markers applied."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    pending: tuple[int, str] | None = None  # (line index, marker body) awaiting its fence
    last_close = -1  # line index of the last closing fence
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            if pending is not None:
                raise MarkupError(f"{where}:{pending[0] + 1}: marker not followed by a fence")
            pending = (i, marker.group("body"))
            i += 1
            continue
        if "docs-test" in line:
            raise MarkupError(f"{where}:{i + 1}: malformed docs-test marker: {line.strip()}")
        opening = _FENCE.match(line)
        if opening is None:
            if pending is not None:
                raise MarkupError(f"{where}:{pending[0] + 1}: marker not followed by a fence")
            i += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        info = opening.group("info").strip().lstrip("{").lstrip(".")
        lang = info.split()[0].rstrip("}") if info else ""
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if j == len(lines):
            raise MarkupError(f"{where}:{i + 1}: unclosed fence")
        body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : j]]
        block = Block(lang=lang, code="\n".join(body) + "\n", line=i + 2)
        if pending is not None:
            if pending[0] != i - 1:
                raise MarkupError(f"{where}:{pending[0] + 1}: marker not just before a fence")
            block = _apply(block, pending[1], blocks, lines, last_close, where, i)
            pending = None
        blocks.append(block)
        last_close = j
        i = j + 1
    if pending is not None:
        raise MarkupError(f"{where}:{pending[0] + 1}: marker not followed by a fence")
    return blocks


def _apply(
    block: Block,
    body: str,
    blocks: list[Block],
    lines: list[str],
    last_close: int,
    where: str,
    fence_at: int,
) -> Block:
    skip, output = _SKIP.match(body), _OUTPUT.match(body)
    file, run = _FILE.match(body), _RUN.match(body)
    at = f"{where}:{fence_at}"
    if skip:
        if block.lang != "python":
            raise MarkupError(f"{at}: a skip marker stands before a {block.lang!r} block")
        return replace(block, skip=skip.group("reason").strip())
    if output:
        if block.lang != "text":
            raise MarkupError(f"{at}: an output marker stands before a {block.lang!r} block")
        previous = blocks[-1] if blocks else None
        if previous is None or not previous.runs:
            raise MarkupError(f"{at}: an output block must follow a block that runs")
        between = lines[last_close + 1 : fence_at - 1]
        if any(ln.strip() for ln in between):
            raise MarkupError(f"{at}: text between the block that runs and its output")
        return replace(block, output=True)
    if file:
        name = file.group("name")
        if any(part in {".", ".."} for part in name.split("/")):
            raise MarkupError(f"{at}: a file name must stay in the working directory: {name}")
        return replace(block, file=name)
    if run:
        if block.lang != "sh":
            raise MarkupError(f"{at}: a run marker stands before a {block.lang!r} block")
        return replace(block, run=True)
    raise MarkupError(f"{at}: unknown docs-test marker {body.strip()!r}")


def _pages() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if "```python" in p.read_text(encoding="utf-8")]


def _normal(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _wall_clock(stamp: str, now: datetime) -> bool:
    """Whether *stamp* is within a day of *now* (so it came from the system clock)."""
    try:
        at = datetime.fromisoformat(stamp.replace(" ", "T"))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return abs(at - now) <= timedelta(days=1)


class Ids:
    """A one-to-one map between the ids a run printed and the ids the page shows."""

    def __init__(self) -> None:
        self.shown: dict[str, str] = {}  # printed id -> id on the page
        self.printed: dict[str, str] = {}  # id on the page -> printed id

    def match(self, printed: str, shown: str) -> bool:
        if self.shown.get(printed, shown) != shown or self.printed.get(shown, printed) != printed:
            return False
        self.shown[printed], self.printed[shown] = shown, printed
        return True


def reconcile(expected: str, actual: str, ids: Ids, now: datetime) -> str:
    """*actual* with each id and wall-clock time written as its counterpart in *expected*.

    Only tokens in corresponding places are reconciled; the rest of the text is left as
    printed, so a real difference still shows.
    """
    want, got = _TOKEN.split(expected), _TOKEN.split(actual)
    if len(want) != len(got):
        return actual
    out = list(got)
    for k in range(1, len(got), 2):
        shown, printed = want[k], got[k]
        if shown == printed and not _IS_ID.fullmatch(printed):
            continue
        if _IS_ID.fullmatch(shown) and _IS_ID.fullmatch(printed):
            if ids.match(printed, shown):
                out[k] = shown
        elif (
            not _IS_ID.fullmatch(shown)
            and not _IS_ID.fullmatch(printed)
            and _wall_clock(printed, now)
        ):
            out[k] = shown
    return "".join(out)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    # What Python prints for a warning when nothing has replaced warnings.showwarning.
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _plain_process_logging() -> Iterator[None]:
    """Logging as a fresh interpreter has it (no handlers on the root logger), then
    every logger put back as it was."""
    manager = logging.Logger.manager
    loggers = [logging.root] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    logging.root.handlers = []
    try:
        yield
    finally:
        for lg, handlers, level, propagate, disabled in saved:
            lg.handlers, lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled
        known = {id(s[0]) for s in saved}
        for new in list(manager.loggerDict.values()):
            if isinstance(new, logging.Logger) and id(new) not in known:
                new.handlers = []  # a logger the page created: leave it without handlers


def _run_python(block: Block, page: Path, namespace: dict[str, Any], where: str) -> str:
    # Line numbers in tracebacks and warnings are the page's own.
    code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
    buffer = io.StringIO()  # stdout and stderr, interleaved as on a terminal
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            exec(code, namespace)  # noqa: S102 - the docs' own code, on purpose
        except BaseException as e:
            out = buffer.getvalue()
            shown = f"\n--- it printed ---\n{out}" if out else ""
            raise AssertionError(
                f"{where}:{block.line}: the block raised {type(e).__name__}: {e}{shown}"
            ) from e
    return buffer.getvalue()


def _run_shell(block: Block, where: str) -> str:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(  # noqa: S603 - the docs' own command, on purpose
        ["bash", "-euo", "pipefail", "-c", block.code],  # noqa: S607
        capture_output=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (
        f"{where}:{block.line}: the command exited with {done.returncode}\n{done.stdout}"
    )
    return done.stdout


def run_page(page: Path, blocks: list[Block]) -> None:
    """Run the page's blocks in order, in the working directory, and check the outputs
    it shows."""
    where = page.relative_to(ROOT).as_posix()
    namespace = sys.modules["__main__"].__dict__  # a fresh module: see _script_process
    now = datetime.now(UTC)
    ids = Ids()
    printed = ""
    written: set[str] = set()
    failures: list[str] = []
    for block in blocks:
        if block.file is not None:
            target = Path(block.file)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a" if block.file in written else "w", encoding="utf-8") as f:
                f.write(block.code)
            written.add(block.file)
        elif block.runs and block.lang == "python":
            printed = _run_python(block, page, namespace, where)
        elif block.runs:
            printed = _run_shell(block, where)
        elif block.output:
            expected = _normal(block.code)
            actual = _normal(reconcile(expected, _normal(printed), ids, now))
            if actual != expected:
                failures.append(
                    f"{where}:{block.line}: the page shows\n{expected}\n"
                    f"--- but the block printed ---\n{actual}\n"
                )
    assert not failures, "\n".join(failures)


@contextlib.contextmanager
def _script_process(workdir: Path) -> Iterator[None]:
    """``__main__``, ``sys.path`` and imports as a script in *workdir* sees them, put
    back afterwards (modules imported from *workdir* are forgotten)."""
    saved_main, saved_path = sys.modules["__main__"], sys.path[:]
    sys.modules["__main__"] = types.ModuleType("__main__")
    sys.path.insert(0, str(workdir))
    try:
        yield
    finally:
        sys.modules["__main__"] = saved_main
        sys.path[:] = saved_path
        for name, mod in list(sys.modules.items()):
            file = getattr(mod, "__file__", None)
            if file and Path(file).resolve().is_relative_to(workdir.resolve()):
                del sys.modules[name]


PAGES = _pages()


def test_pages_were_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/tutorial.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_samples(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    text = page.read_text(encoding="utf-8")
    blocks = parse(text, page.relative_to(ROOT).as_posix())
    if "FACES_DATABASE_URL" in text:
        monkeypatch.setenv("FACES_DATABASE_URL", request.getfixturevalue("pg_uri"))
    monkeypatch.chdir(tmp_path)
    previous = pg.configure()  # a fresh default guard, as a new process has
    try:
        with _plain_process_logging(), warnings.catch_warnings():
            # As in a plain interpreter: an audit-mode PurposeWarning is printed to stderr.
            # Any other warning still fails the test, as the suite's filters say.
            warnings.filterwarnings("default", category=pg.PurposeWarning)
            monkeypatch.setattr(warnings, "showwarning", _show_warning)
            with _script_process(tmp_path):
                contextvars.copy_context().run(run_page, page, blocks)
    finally:
        pg.configure(previous)


# --- the conventions themselves -------------------------------------------------------


def test_markers_are_parsed() -> None:
    text = "\n".join(
        [
            "<!-- docs-test: skip (needs a server) -->",
            "```python",
            "connect()",
            "```",
            "",
            "```python",
            "print(1)",
            "```",
            "",
            "<!-- docs-test: output -->",
            "```text",
            "1",
            "```",
            "```text",
            "not checked",
            "```",
        ]
    )
    blocks = parse(text, "page.md")
    assert [(b.lang, b.skip, b.output, b.line) for b in blocks] == [
        ("python", "needs a server", False, 3),
        ("python", None, False, 7),
        ("text", None, True, 12),
        ("text", None, False, 15),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "<!-- docs-test: skip -->\n```python\nx\n```\n",  # no reason
        "<!-- docs-test: skip () -->\n```python\nx\n```\n",  # an empty reason
        "<!-- docs-test: output -->\n```text\nx\n```\n",  # no python block before
        "```python\nx\n```\nprose\n<!-- docs-test: output -->\n```text\nx\n```\n",
        "<!-- docs-test: skip (r) -->\n\n```python\nx\n```\n",  # not just before
        "<!-- docs-test: skip (r) -->\n```text\nx\n```\n",
        "<!-- docs-test: outptu -->\n```text\nx\n```\n",  # a typo
        "<!-- docs-test output -->\n```text\nx\n```\n",
        "```python\nx\n",  # unclosed
        "<!-- docs-test: skip (r) -->\n```python\nx\n```\n<!-- docs-test: output -->\n"
        "```text\nx\n```\n",  # the output of a block that does not run
    ],
)
def test_bad_markers_are_errors(text: str) -> None:
    with pytest.raises(MarkupError):
        parse(text, "page.md")


def test_ids_are_matched_one_to_one_across_a_page() -> None:
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = Ids()
    assert reconcile(f"id {c}", f"id {a}", ids, now) == f"id {c}"
    # The same printed id must be shown as the same id, and no other id as it.
    assert reconcile(f"again {c}", f"again {a}", ids, now) == f"again {c}"
    assert reconcile(f"other {b}", f"other {a}", ids, now) == f"other {a}"
    assert reconcile(f"other {c}", f"other {b}", ids, now) == f"other {b}"
    # Shorter or longer hex runs are not ids; nor is anything else.
    assert reconcile("x 1234abcd", "x 1234abce", ids, now) == "x 1234abce"
    assert reconcile("k=10", "k=11", ids, now) == "k=11"


def test_only_wall_clock_times_are_accepted_as_any_time() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ids = Ids()
    shown = "at 2025-01-01T00:00:00+00:00"
    assert reconcile(shown, "at 2026-05-01T11:59:58+00:00", ids, now) == shown
    assert reconcile(shown, "at 2026-05-01 11:59:58.123456+00:00", ids, now) == shown
    # A time far from the wall clock came from a frozen clock or a computation: exact.
    assert reconcile(shown, "at 2027-05-01T12:00:00+00:00", ids, now).endswith(
        "2027-05-01T12:00:00+00:00"
    )
