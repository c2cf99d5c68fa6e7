"""``purposeguard report`` and ``purposeguard.reports.build_report``.

The world is built with real guarded operations: a policy with presets, an SQLite
consent registry, an SQLite store and a JsonlSink log, on a frozen clock across days.
"""

from __future__ import annotations

import argparse
import os
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import purposeguard as pg
from purposeguard._cli_report import register
from purposeguard.audit import JsonlSink, MemorySink, pseudonymise
from purposeguard.policy import CollectionContext, Consent, Policy, SQLiteConsentRegistry
from purposeguard.reports import NO_RULE, Report, build_report
from purposeguard.stores import GuardedStore, MemoryBackend, SQLiteBackend

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PRIVATE = CollectionContext(place="private", source="camera")
# A value no count, date or id in a report can contain by chance.
SECRET = 0.918273
SECRET_TEXT = ("918273", "0.91827", "9.18273")
PRESETS = ("pipl", "cn_face_2025", "gdpr", "bipa")


def make_policy(**changes: object) -> Policy:
    """Four presets; every duty declared except the necessity justification."""
    settings: dict[str, object] = {
        "impact_assessment": "PIA-2026-01",
        "notice": "https://example.com/biometrics",
        "storage": "user_device",
        "processing": ["face.verification", "face.identification"],
        "alternatives": {"face.verification": "badge"},
    }
    settings.update(changes)
    return Policy.preset(*PRESETS, **settings)


@dataclass
class World:
    store: Path
    log: Path
    key_file: Path
    key: bytes
    consents: Path
    policy_file: Path
    policy: Policy


def _denied(fn: object) -> None:
    with pytest.raises(pg.AccessDeniedError):
        fn()  # type: ignore[operator]


def build_world(tmp: Path) -> World:
    """Templates under several purposes; grants, denials over three days, erasures."""
    key = os.urandom(32)
    key_file = tmp / "audit.key"
    key_file.write_bytes(key.hex().encode())
    policy_file = tmp / "policy.toml"
    policy_file.write_text(
        'presets = ["pipl", "cn_face_2025", "gdpr", "bipa"]\n'
        'storage = "user_device"\n'
        'processing = ["face.verification", "face.identification"]\n'
        "[duties]\n"
        'impact_assessment = "PIA-2026-01"\n'
        'notice = "https://example.com/biometrics"\n'
        'alternatives = { "face.verification" = "badge" }\n',
        encoding="utf-8",
    )
    policy = make_policy()
    clock = pg.FrozenClock(T0)
    registry = SQLiteConsentRegistry(tmp / "consents.db")
    log = tmp / "audit.jsonl"
    before = T0 - timedelta(days=1)

    def consent(cid: str, subject: str, purposes: list[str], form: str = "written") -> None:
        registry.add(
            Consent(id=cid, subject=subject, purposes=purposes, form=form,
                    given_at=before, notice="notice-v1")
        )  # fmt: skip

    consent("c1", "alice", ["face.verification", "face.identification"])
    consent("c2", "bob", ["face.verification", "face.identification"])
    consent("c3", "carol", ["face.identification"])
    consent("c4", "dave", ["face.verification"])
    consent("c5", "erin", ["face.verification"], form="explicit")  # too weak for BIPA

    def wrap(
        subject: str, purposes: list[str], cid: str | None, days: float = 300
    ) -> pg.FaceTemplate:
        return pg.FaceTemplate.wrap(
            np.full(8, SECRET) + np.arange(8) * 0.001, subject=subject, purposes=purposes,
            ttl=timedelta(days=days), consent=cid, context=PRIVATE,
        )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pg.PurposeWarning)  # the undeclared necessity
        guard = pg.Guard(
            policy=policy, consents=registry, clock=clock,
            audit=(sink := JsonlSink(log, key=key)),
        )  # fmt: skip
    try:
        with pg.using(guard), GuardedStore(SQLiteBackend(tmp / "store.db")) as store:
            a = wrap("alice", ["face.verification"], "c1")
            b = wrap("bob", ["face.verification", "face.identification"], "c2")
            c = wrap("carol", ["face.identification"], "c3")
            d = wrap("dave", ["face.verification"], "c4", days=2)
            store.enrol_many([a, b, c, d])
            with pg.purpose("face.verification.login"):
                a.reveal()
                b.reveal()
            # Day 1: a purpose the label does not allow (no rule id), and a wrap resting
            # on a consent too weak for BIPA and PIPL.
            with pg.purpose("face.identification"):
                _denied(a.reveal)
            _denied(lambda: wrap("erin", ["face.verification"], "c5"))
            # Day 2: no consent record at all.
            clock.advance(timedelta(days=1))
            _denied(lambda: wrap("frank", ["face.verification"], None))
            _denied(lambda: wrap("frank", ["face.verification"], None))
            # Day 3: erasures.
            clock.advance(timedelta(days=2))
            assert store.erase_subject("bob") == 1
            assert store.withdraw_consent("c1") == 1
            assert store.purge_expired() == 1  # dave's 2-day template
            with pg.purpose("face.identification"):
                _denied(a.reveal)  # consent c1 is withdrawn now
    finally:
        sink.close()
        registry.close()
    return World(
        store=tmp / "store.db", log=log, key_file=key_file, key=key,
        consents=tmp / "consents.db", policy_file=policy_file, policy=policy,
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def report(world: World) -> Report:
    return build_report(
        store=world.store, policy=world.policy, audit_log=world.log, key=world.key,
        consents=world.consents, now=T0 + timedelta(days=3),
    )  # fmt: skip


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="purposeguard")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    assert isinstance(code, int)
    return code


def cli_args(w: World, out: Path, fmt: str = "md", log: Path | None = None) -> list[str]:
    return [
        "report", "--store", str(w.store), "--policy", str(w.policy_file),
        "--audit-log", str(log or w.log), "--key-file", str(w.key_file),
        "--consents", str(w.consents), "--format", fmt, "-o", str(out),
    ]  # fmt: skip


def tampered_copy(w: World, tmp: Path) -> Path:
    """A copy of the log with one denial turned into a grant (MAC not recomputed)."""
    lines = w.log.read_bytes().splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if b'"outcome":"denied"' in line)
    lines[i] = lines[i].replace(b'"outcome":"denied"', b'"outcome":"granted"')
    bad = tmp / "tampered.jsonl"
    bad.write_bytes(b"".join(lines))
    return bad


# -- the figures ----------------------------------------------------------------------


def test_counts_of_templates_subjects_and_purposes(report: Report) -> None:
    # Four enrolled; bob erased, alice's withdrawn, dave's purged: carol remains.
    assert (report.templates, report.subjects) == (1, 1)
    by = {e.purpose: e for e in report.purposes}
    assert by["face.identification"].templates == 1
    assert by["face.verification"].templates == 0  # declared, none left
    assert by["face.verification"].declared is True
    assert by["face.identification"].sensitive is True
    # BIPA asks for a written release, stronger than PIPL's separate consent.
    assert by["face.verification"].consent_form == "written"
    # Uses granted under the login purpose (two reveals) come from the log.
    assert by["face.verification.login"].granted == 2


def test_consents_by_form_and_basis(report: Report) -> None:
    c = report.consents
    assert c is not None
    assert c.total == 5
    assert c.withdrawn == 1
    assert c.by_form["written"] == 4
    assert c.by_form["explicit"] == 1
    assert c.by_form["opt_out"] == 0
    assert c.by_basis["consent"] == 5
    assert c.templates_by_basis == {"consent": 1}


def test_denials_by_rule_and_day(report: Report) -> None:
    a = report.audit
    assert a is not None
    assert a.verified
    # Day 1: a purpose alice's label does not allow (no rule id), and erin's explicit
    # consent, too weak for PIPL, the CN Measures and BIPA. Day 2: twice no consent
    # record. Day 4: alice's consent is withdrawn.
    days = a.denials_by_day
    assert list(days) == ["2026-03-02", "2026-03-03", "2026-03-05"]
    assert days["2026-03-02"] == {NO_RULE: 1, "CN-08": 1, "FR-02": 1, "IL-02": 1}
    assert days["2026-03-03"] == {"CN-02": 2, "EU-01": 2, "FR-02": 2, "IL-02": 2}
    assert days["2026-03-05"] == {"CN-09": 1, "EU-04": 1}
    assert a.denials_by_rule["IL-02"] == 3
    assert a.denials_by_rule["FR-02"] == 3
    assert a.denials_by_rule["CN-02"] == 2
    assert a.denials_by_rule[NO_RULE] == 1
    assert list(a.denials_by_rule)[:2] == ["FR-02", "IL-02"]  # most frequent first
    assert a.outcomes == {"granted": 10, "denied": 5, "would_deny": 0}
    assert a.events == 15
    assert a.operations["delete"] == 3


def test_erasures_from_the_log(report: Report) -> None:
    a = report.audit
    assert a is not None
    assert a.erasures == {
        "erase_subject": (1, 1),
        "withdraw_consent": (1, 1),
        "purge_expired": (1, 1),
    }
    assert a.subjects_erased == 1


def test_duties_and_filing_state(report: Report) -> None:
    assert any(d.startswith("CN-08/FR-02: no necessity justification") for d in report.duties)
    assert report.duties == tuple(make_policy().lint())
    assert report.filing.in_force
    assert report.filing.alerts == ()
    assert report.filing.subjects == 1


def test_filing_alert_at_the_threshold() -> None:
    # FR-07's alert comes from the policy through the store's counts; 100,000 real
    # subjects would be slow, so the policy's own alert is checked on the counts.
    alerts = make_policy().filing_alerts({"subjects": 100_000})
    assert alerts
    assert alerts[0].startswith("FR-07")
    assert make_policy(filing="CAC-2026-7").filing_alerts({"subjects": 100_000}) == []


def test_retention_per_purpose(report: Report) -> None:
    by = {e.purpose: e for e in report.purposes}
    e = by["face.identification"]
    assert e.longest_days == pytest.approx(300, abs=1e-3)
    assert e.latest_expiry == T0 + timedelta(days=300)
    assert e.expired == 0
    assert any(r.startswith("IL-01") for r in e.retention_rules)
    assert any(r.startswith("CN-06/EU-04") for r in e.retention_rules)
    # Held to a policy whose own cap is 30 days, the 300-day template is beyond it.
    capped = make_policy(max_retention={"face.identification": timedelta(days=30)})
    strict = build_report(store=report.store, policy=capped, now=T0 + timedelta(days=3))
    s = {x.purpose: x for x in strict.purposes}["face.identification"]
    assert s.beyond_cap == 1
    assert any(r.startswith("LOCAL-RETENTION: 30 days") for r in s.retention_rules)


# -- rendering ------------------------------------------------------------------------


def test_markdown_carries_the_figures(report: Report) -> None:
    md = report.to_markdown()
    assert md.startswith("# Record of processing of face data")
    assert "WARNING" not in md
    assert "| Templates stored | 1 |" in md
    assert "| IL-02 | 3 |" in md
    assert "| CN-02 | 2 |" in md
    assert f"| {NO_RULE} | 1 |" in md
    assert "| 2026-03-03 |" in md
    assert "| written | 4 |" in md
    assert "| explicit | 1 |" in md
    assert "| erase_subject | 1 | 1 |" in md
    assert "| purge_expired | 1 | 1 |" in md
    assert "CN-08/FR-02: no necessity justification" in md
    assert "Impact assessment skeleton (PIPL Art. 55-56)" in md
    # Every table row has as many cells as its header (pipes in text are escaped).
    for block in re.findall(r"(?:^\|.*\|\n)+", md, flags=re.M):
        rows = block.strip().split("\n")
        cells = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
        assert len(cells) == 1, block


def test_html_is_self_contained_with_charts(report: Report) -> None:
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3  # templates per purpose, denials per rule, per day
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", page)
    assert "@import" not in page
    assert "url(" not in page
    assert '<td>IL-02</td><td class="n">3</td>' in page
    assert "<title>IL-02: 3</title>" in page
    assert "<td>2026-03-05</td>" in page
    assert "TAMPERED" not in page


def test_no_values_and_no_subject_ids_leak(world: World, report: Report) -> None:
    pseudonyms = [pseudonymise(s, key=world.key) for s in ("alice", "carol")]
    for text in (report.to_markdown(), report.to_html()):
        for secret in SECRET_TEXT:
            assert secret not in text
        for name in ("alice", "bob", "carol", "dave", "erin", "frank", "c1", "c4"):
            assert not re.search(rf"\b{name}\b", text), name
        for p in pseudonyms:
            assert p not in text


def test_text_from_the_policy_is_escaped_in_html(world: World) -> None:
    policy = make_policy(necessity="<script>alert(1)</script> & more")
    page = build_report(store=world.store, policy=policy, now=T0).to_html()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


# -- the command ----------------------------------------------------------------------


def test_command_writes_markdown_and_html(world: World, tmp_path: Path) -> None:
    out = tmp_path / "record.md"
    assert run(cli_args(world, out)) == 0
    md = out.read_text(encoding="utf-8")
    assert "| IL-02 | 3 |" in md
    assert "verified" in md
    page = tmp_path / "record.html"
    assert run(cli_args(world, page, "html")) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text
    for secret in SECRET_TEXT:
        assert secret not in md
        assert secret not in text


def test_command_presets_compose_with_the_policy_file(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["report", "--store", str(world.store), "--preset", "texas_cubi"]) == 0
    md = capsys.readouterr().out
    assert "texas_cubi" in md
    assert "TX-01" in md
    assert "No audit log given." in md
    argv = ["report", "--store", str(world.store), "--policy", str(world.policy_file),
            "--preset", "colorado"]  # fmt: skip
    assert run(argv) == 0
    md = capsys.readouterr().out
    assert "CO-01" in md
    assert "IL-01" in md
    # Several names after one --preset, as in ``policy explain``.
    assert run(["report", "--store", str(world.store), "--preset", "pipl", "bipa"]) == 0
    assert "pipl+bipa" in capsys.readouterr().out


def test_tampered_log_exits_1_and_says_so(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tampered_copy(world, tmp_path)
    out = tmp_path / "record.md"
    assert run(cli_args(world, out, log=bad)) == 1
    md = out.read_text(encoding="utf-8")
    head = md.split("## Summary")[0]
    assert "> **WARNING**" in head
    assert "FAILED VERIFICATION" in head
    assert "FAILED VERIFICATION" in capsys.readouterr().err
    page = tmp_path / "record.html"
    assert run(cli_args(world, page, "html", log=bad)) == 1
    text = page.read_text(encoding="utf-8")
    assert 'class="alert"' in text.split("<h2>")[0]
    assert "TAMPERED" in text
    # The figures cover only the entries before the edited one.
    r = build_report(store=world.store, audit_log=bad, key=world.key)
    assert r.tampered
    assert r.audit is not None
    assert r.audit.first_bad_seq is not None
    assert r.audit.entries == r.audit.first_bad_seq
    assert sum(r.audit.denials_by_rule.values()) == 0  # the first denial was the edit


def test_wrong_key_is_reported_as_a_failed_verification(world: World, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    argv = cli_args(world, tmp_path / "r.md")
    argv[argv.index("--key-file") + 1] = str(other)
    assert run(argv) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--store": "missing.db"}, "no such store file"),
        ({"--consents": "missing-consents.db"}, "no such consent registry file"),
        ({"--audit-log": "missing.jsonl"}, "no audit log file"),
        ({"--policy": "missing.toml"}, "missing.toml"),
        ({"--key-file": "empty.key"}, "is empty"),
    ],
)
def test_usage_errors_exit_2(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    message: str,
) -> None:
    (tmp_path / "empty.key").write_bytes(b"")
    out = tmp_path / "r.md"
    argv = cli_args(world, out)
    for flag, value in change.items():
        argv[argv.index(flag) + 1] = str(tmp_path / value)
    assert run(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert not (tmp_path / "missing.db").exists()  # nothing is created
    assert not (tmp_path / "missing-consents.db").exists()


def test_log_without_key_and_not_a_store_exit_2(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["report", "--store", str(world.store), "--audit-log", str(world.log)]) == 2
    assert "--key-file" in capsys.readouterr().err
    other = tmp_path / "other.db"
    import sqlite3

    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert run(["report", "--store", str(other)]) == 2
    assert "not a purposeguard store" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert run(["report", "--store", str(empty)]) == 2


def test_report_on_a_guarded_store_object_and_without_extras() -> None:
    clock = pg.FrozenClock(T0)
    with pg.using(pg.Guard(clock=clock, audit=MemorySink())):
        store = GuardedStore(MemoryBackend())
        store.enrol(pg.FaceTemplate.wrap(np.ones(4), subject="s1", purposes="face.verification",
                                         ttl=timedelta(days=1)))  # fmt: skip
    r = build_report(store=store, now=T0 + timedelta(days=2))
    assert r.backend == "memory"
    assert r.templates == 1
    (e,) = r.purposes
    assert (e.purpose, e.expired, e.consent_form, e.declared) == (
        "face.verification",
        1,
        None,
        None,
    )
    assert any("no policy given" in n for n in r.notes)
    assert "No audit log given." in r.to_markdown()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"store": 3},
        {"store": "x.db", "policy": "gdpr"},
        {"store": "x.db", "audit_log": "a.jsonl"},
        {"store": "x.db", "key": b"k" * 32},
        {"store": "x.db", "now": datetime(2026, 1, 1)},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(pg.PolicyError):
        build_report(**kwargs)  # type: ignore[arg-type]
