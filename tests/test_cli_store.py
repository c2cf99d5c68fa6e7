"""The ``purposeguard demo`` and ``purposeguard store ...`` commands, and the progress bar."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import purposeguard as pg
from purposeguard._cli.progress import Progress
from purposeguard.audit import MemorySink, Outcome
from purposeguard.cli import main
from purposeguard.stores import GuardedStore, SQLiteBackend

OPTIN = "face.identification.closed_set_optin"
LOGIN = "face.verification.login"
COUNTING = "face.analytics.counting"
DIM = 16
# Every stored vector holds this value somewhere: it must never appear in any output.
MARKER = 0.7182818


def run(argv: list[str]) -> int:
    """Run the CLI; argparse's usage errors and --help exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else int(e.code is not None)


# -- a store made by the test ----------------------------------------------------------


@dataclass
class Made:
    path: Path
    optin: list[str]  # ids of opt-in templates (subjects member-0..4)
    login: list[str]  # ids of sign-in templates (subjects member-0..2)
    expired: list[str]  # ids of counting templates, expired by the system clock


@pytest.fixture
def made(tmp_path: Path) -> Made:
    """A store of 12 templates: 5 opt-in, 3 sign-in, 4 already expired."""
    path = tmp_path / "store.db"
    clock = pg.FrozenClock(datetime.now(UTC) - timedelta(days=10))
    rng = np.random.default_rng(1)

    def vec() -> np.ndarray:
        v = rng.standard_normal(DIM)
        v[3] = MARKER
        return v

    def wrap(subject: str, purposes: str, ttl: timedelta) -> pg.FaceTemplate:
        return pg.FaceTemplate.wrap(vec(), subject=subject, purposes=purposes, ttl=ttl)

    year = timedelta(days=365)
    with (
        pg.using(pg.Guard(clock=clock, audit=MemorySink())),
        GuardedStore(SQLiteBackend(path)) as store,
    ):
        optin = store.enrol_many(wrap(f"member-{i}", OPTIN, year) for i in range(5))
        login = store.enrol_many(wrap(f"member-{i}", LOGIN, year) for i in range(3))
        expired = store.enrol_many(
            wrap(f"visitor-{i}", COUNTING, timedelta(days=1)) for i in range(4)
        )
    return Made(path=path, optin=optin, login=login, expired=expired)


def stats(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert run(["store", "stats", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


@pytest.fixture(autouse=True)
def _no_values_printed(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    # Whatever a test printed and did not read must not hold a template value either.
    yield
    captured = capsys.readouterr()
    assert str(MARKER)[:7] not in captured.out + captured.err


def check_no_values(text: str) -> None:
    assert str(MARKER)[:7] not in text


# -- the demo --------------------------------------------------------------------------

SECTIONS = [
    "Enrolment",
    f"1:1 verification under {LOGIN}",
    f"1:N identification under {OPTIN}",
    "Out of purpose: blocked",
    "audit mode",
    "Time passes",
    "Erasure",
    "What the audit log recorded",
]


def test_demo_runs_with_no_options(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert run(["demo"]) == 0
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    out = captured.out
    for heading in SECTIONS:
        assert heading in out, heading
    assert "enrolled 3,000 synthetic 512-d templates" in out
    # The out-of-purpose search is blocked, with its explanation.
    assert "BLOCKED PurposeViolationError: search of template" in out
    assert f"for '{OPTIN}' denied: purpose '{OPTIN}' is not within" in out
    assert "does not allow search for 'face.verification.login'" in out
    assert "BLOCKED TemplateNotFoundError" in out
    # Audit mode: the warning, and the search proceeds within its gallery.
    assert "PurposeWarning: audit mode let this through" in out
    assert "from the opted-in gallery" in out
    assert "would_deny" in out
    assert "purge_expired() removed" in out
    assert "erase_subject(" in out
    assert "the store was in a temporary folder and has been removed" in out
    # Not a TTY: no progress bar, nothing on stderr.
    assert captured.err == ""
    assert elapsed < 30  # a few seconds on a laptop; generous for a loaded CI machine


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["demo", "--json", "--n", "400", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n"] == 400
    assert data["seed"] == 3
    assert data["kept"] is False
    assert not Path(data["store"]).exists()
    assert data["enrolled"]["templates"] == 400
    assert set(data["enrolled"]["by_purpose"]) >= {OPTIN, LOGIN, COUNTING}
    assert data["verification"]["genuine_accepted"] == data["verification"]["attempts"]
    assert data["verification"]["impostor_accepted"] == 0
    assert data["identification"]["rank1"] == data["identification"]["searches"]
    assert [b["error"] for b in data["blocked"]] == [
        "PurposeViolationError",
        "PurposeViolationError",
        "TemplateNotFoundError",
    ]
    assert [a["outcome"] for a in data["audit_mode"]] == ["would_deny", "would_deny"]
    assert all(a["outside_gallery"] == 0 for a in data["audit_mode"])
    assert data["expiry"]["purged"] > 0
    assert data["erasure"]["removed"] == 2
    by_op = data["audit"]["by_operation"]
    assert by_op["search"]["denied"] == 2
    assert by_op["search"]["would_deny"] == 2
    assert by_op["collect"]["granted"] >= 400
    assert data["audit"]["events"] == sum(sum(v.values()) for v in by_op.values())
    assert data["seconds"]["total"] > 0


def test_demo_keeps_its_store_in_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "new" / "folder"
    assert run(["demo", "--dir", str(folder), "--n", "200"]) == 0
    out = capsys.readouterr().out
    path = folder / "purposeguard-demo.db"
    assert path.is_file()
    assert f"purposeguard store stats {path}" in out
    data = stats(path, capsys)
    # The search it suggests runs.
    suggested = next(line for line in out.splitlines() if "purposeguard store search" in line)
    argv = suggested.split()[1:]
    assert run(argv) == 0
    assert "(the probe)" in capsys.readouterr().out
    assert data["dim"] == 512
    assert isinstance(data["templates"], int)
    assert 0 < data["templates"] < 200  # expired ones purged, one subject erased
    # A second run refuses to enrol into the same store.
    assert run(["demo", "--dir", str(folder), "--n", "200"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert stats(path, capsys)["templates"] == data["templates"]


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--n", "10"],
        ["demo", "--n", "many"],
        ["demo", "--n", "10000000"],
        ["demo", "--seed", "-1"],
        ["demo", "--bogus"],
    ],
)
def test_demo_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_demo_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert run(["demo", "--dir", str(f)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_demo_through_the_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-m", "purposeguard.cli", "demo", "--n", "300"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Out of purpose: blocked" in done.stdout
    assert "BLOCKED PurposeViolationError" in done.stdout
    assert done.stderr == ""
    script = shutil.which("purposeguard", path=str(Path(sys.executable).parent))
    if script is not None:  # the console script, when installed beside the interpreter
        done = subprocess.run(  # noqa: S603 - the script pip installed for this package
            [script, "demo", "--json", "--n", "150", "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["store"] == str(tmp_path / "purposeguard-demo.db")


# -- store stats, purge, erase-subject ---------------------------------------------------


def test_stats(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["store", "stats", str(made.path)]) == 0
    out = capsys.readouterr().out
    assert "templates  12" in out
    assert "subjects   9" in out
    assert f"dim        {DIM}" in out
    data = stats(made.path, capsys)
    assert data == {
        "path": str(made.path),
        "backend": "sqlite",
        "templates": 12,
        "subjects": 9,
        "dim": DIM,
    }


def test_stats_of_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"
    SQLiteBackend(path).close()
    assert stats(path, capsys)["dim"] is None
    assert run(["store", "stats", str(path)]) == 0
    assert "dim        -" in capsys.readouterr().out


def test_purge_removes_what_the_system_clock_says_expired(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["store", "purge", str(made.path)]) == 0
    assert "purged 4 templates" in capsys.readouterr().out
    assert stats(made.path, capsys)["templates"] == 8
    assert run(["store", "purge", str(made.path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["removed"] == 0
    assert data["remaining"] == 8


def test_erase_subject_then_stats(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    before = stats(made.path, capsys)
    assert run(["store", "erase-subject", str(made.path), "member-1"]) == 0
    assert "erased 2 templates of subject 'member-1'; 10 remain" in capsys.readouterr().out
    after = stats(made.path, capsys)
    assert after["templates"] == 10
    assert isinstance(before["subjects"], int)
    assert after["subjects"] == before["subjects"] - 1
    # Erasing again is not an error: nothing is left to erase.
    assert run(["store", "erase-subject", str(made.path), "member-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 0
    assert run(["store", "erase-subject", str(made.path), ""]) == 2


def test_store_commands_are_audited_by_the_guard_in_force(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = MemorySink()
    with pg.using(pg.Guard(audit=sink)):
        assert run(["store", "erase-subject", str(made.path), "member-4"]) == 0
        assert run(["store", "search", str(made.path), "--purpose", LOGIN,
                    "--probe-id", made.login[0]]) == 1  # fmt: skip
    capsys.readouterr()
    deletes = [e for e in sink.events if e.operation is pg.Operation.DELETE]
    assert [e.subjects for e in deletes] == [("member-4",)]
    denied = [e for e in sink.events if e.outcome is Outcome.DENIED]
    assert [e.operation for e in denied] == [pg.Operation.SEARCH]


def test_verbose_prints_audit_events(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["store", "erase-subject", str(made.path), "member-0", "-v"]) == 0
    err = capsys.readouterr().err
    assert "audit: granted delete" in err
    assert "erase_subject" in err


# -- store search ----------------------------------------------------------------------


def search(made: Made, probe: str, *more: str, purpose: str = OPTIN) -> list[str]:
    return ["store", "search", str(made.path), "--purpose", purpose, "--probe-id", probe, *more]


def test_search_text(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(search(made, made.optin[2], "-k", "3")) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"3 matches for probe {made.optin[2]} under {OPTIN} (k=3)"
    assert made.optin[2] in lines[2]
    assert lines[2].endswith("member-2  (the probe)")
    assert len(lines) == 5


def test_search_json_ranks_only_permitted_templates(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(search(made, made.optin[0], "-k", "50", "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["purpose"] == OPTIN
    assert data["probe_id"] == made.optin[0]
    ids = [m["template_id"] for m in data["matches"]]
    assert sorted(ids) == sorted(made.optin)  # no sign-in, no expired template
    assert data["matches"][0]["is_probe"] is True
    assert data["matches"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    scores = [m["score"] for m in data["matches"]]
    assert scores == sorted(scores, reverse=True)
    assert [m["rank"] for m in data["matches"]] == list(range(1, 6))


@pytest.mark.parametrize(
    ("probe", "purpose", "fragment"),
    [
        ("login", OPTIN, "not found"),  # a 1:1 enrolment is invisible to 1:N
        ("login", LOGIN, "does not allow search"),  # 1:1 purposes cannot search
        ("expired", COUNTING, "not found"),
        ("missing", OPTIN, "not found"),
        ("optin", LOGIN, "not found"),
    ],
)
def test_search_denied_or_not_found_exits_1(
    made: Made, capsys: pytest.CaptureFixture[str], probe: str, purpose: str, fragment: str
) -> None:
    ids = {
        "login": made.login[0],
        "expired": made.expired[0],
        "missing": "0" * 32,
        "optin": made.optin[0],
    }
    assert run(search(made, ids[probe], "--json", purpose=purpose)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert fragment in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("extra", "purpose"),
    [
        ([], "Not A Purpose"),
        ([], "face.unknown"),
        (["-k", "0"], OPTIN),
        (["-k", "x"], OPTIN),
    ],
)
def test_search_usage_errors_exit_2(
    made: Made, capsys: pytest.CaptureFixture[str], extra: list[str], purpose: str
) -> None:
    assert run(search(made, made.optin[0], *extra, purpose=purpose)) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_search_with_a_custom_taxonomy(
    tmp_path: Path, made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    tax = tmp_path / "tax.toml"
    tax.write_text('[purposes."face.identification.closed_set_optin.lobby"]\n')
    args = search(made, made.optin[0], purpose=f"{OPTIN}.lobby")
    assert run(args) == 2  # unknown without the taxonomy
    assert run([*args, "--taxonomy", str(tax), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["purpose"] == f"{OPTIN}.lobby"
    assert {m["template_id"] for m in data["matches"]} <= set(made.optin)


# -- files that are not stores -----------------------------------------------------------

COMMANDS = [
    ["stats"],
    ["purge"],
    ["erase-subject", "@PATH", "member-0"],
    ["search", "@PATH", "--purpose", OPTIN, "--probe-id", "0" * 32],
]


def argv_for(command: list[str], path: Path) -> list[str]:
    if "@PATH" in command:
        return ["store", *(str(path) if a == "@PATH" else a for a in command)]
    return ["store", *command, str(path)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_missing_file_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "nope.db"
    assert run(argv_for(command, path)) == 2
    err = capsys.readouterr().err
    assert "no such store file" in err
    assert str(path) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_other_files_exit_2_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    before = {p.name: p.read_bytes() for p in (empty, text, other)}
    for path in (empty, text, other, tmp_path):
        assert run(argv_for(command, path)) == 2, path
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert str(path) in err
    assert {p.name: p.read_bytes() for p in (empty, text, other)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "notes.txt", "other.db"]


# -- help and usage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["demo", "--help"],
        ["store", "--help"],
        ["store", "stats", "--help"],
        ["store", "purge", "--help"],
        ["store", "erase-subject", "--help"],
        ["store", "search", "--help"],
    ],
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: purposeguard")
    assert "Traceback" not in out


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "store", "taxonomy", "explain"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [
        ["store"],
        ["store", "frobnicate"],
        ["store", "stats"],
        ["store", "erase-subject", "x.db"],
        ["store", "search", "x.db", "--probe-id", "abc"],
    ],
)
def test_store_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert "usage:" in capsys.readouterr().err


# -- the progress bar --------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_nothing_when_not_a_tty() -> None:
    stream = io.StringIO()
    with Progress("work", total=10, stream=stream, delay=0, interval=0) as bar:
        for _ in range(10):
            bar.update()
    with Progress("wait", stream=stream, delay=0, interval=0.01):
        time.sleep(0.05)
    assert stream.getvalue() == ""
    assert not bar.enabled


def test_progress_bar_on_a_tty() -> None:
    stream = FakeTTY()
    with Progress("enrolling", total=1000, stream=stream, delay=0, interval=0) as bar:
        for _ in range(4):
            bar.update(250)
    text = stream.getvalue()
    assert text.startswith("\renrolling [")
    assert text.endswith("1,000/1,000 100% " + text.rsplit(" ", 1)[-1])
    assert text.endswith("s\n")
    assert text.count("\n") == 1
    assert "250/1,000" in text


def test_progress_waits_before_drawing() -> None:
    stream = FakeTTY()
    with Progress("quick", total=3, stream=stream, delay=60) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_activity_indicator_on_a_tty() -> None:
    stream = FakeTTY()
    with Progress("purging", stream=stream, delay=0, interval=0.005):
        time.sleep(0.1)
    text = stream.getvalue()
    assert text.startswith("\rpurging ")
    assert "purging done" in text
    assert text.endswith("s\n")


def test_progress_survives_a_closed_stream() -> None:
    stream = FakeTTY()
    bar = Progress("x", total=2, stream=stream, delay=0, interval=0)
    stream.close()
    bar.update()
    bar.update()
    bar.close()
    assert not bar.enabled
