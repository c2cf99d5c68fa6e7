"""``purposeguard policy lint`` and ``purposeguard policy explain``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from purposeguard._cli_policy import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="purposeguard")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    assert isinstance(code, int)
    return code


LABEL = {
    "allowed": ["face.verification"],
    "subject": "u1",
    "expires_at": "2026-06-01T00:00:00Z",
    "collected_at": "2026-01-01T00:00:00Z",
    "consent": "c1",
}
CONSENT = {
    "id": "c1",
    "subject": "u1",
    "purposes": ["face.verification"],
    "form": "separate",
    "given_at": "2025-12-31T00:00:00Z",
    "notice": "n1",
}


def test_lint_reports_undeclared_duties(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text('presets = ["pipl"]\n', encoding="utf-8")
    assert run(["policy", "lint", str(path)]) == 1
    out = capsys.readouterr().out
    assert "CN-14: no impact assessment declared" in out
    assert "CN-08" in out
    path.write_text('presets = ["ccpa"]\n[duties]\nnotice = "https://n"\n', encoding="utf-8")
    assert run(["policy", "lint", str(path)]) == 0
    assert "no issues" in capsys.readouterr().out
    path.write_text('presets = ["pipl"]\nrules = ["ZZ-01"]\n', encoding="utf-8")
    assert run(["policy", "lint", str(path)]) == 2
    assert "p.toml:2: rules: unknown rule id 'ZZ-01'" in capsys.readouterr().out


def test_explain_allowed_and_denied_rule_by_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label, consent = json.dumps(LABEL), json.dumps(CONSENT)
    base = [
        "policy",
        "explain",
        "--label",
        label,
        "--consent",
        consent,
        "--at",
        "2026-02-01T00:00:00Z",
    ]
    assert run([*base, "--preset", "pipl", "--purpose", "face.verification.login"]) == 0
    out = capsys.readouterr().out
    assert "ALLOWED" in out
    assert "CN-08           ok" in out
    assert "CN-14           duty      UNDECLARED" in out
    assert run([*base, "--preset", "pipl", "bipa", "--purpose", "face.verification.login"]) == 1
    out = capsys.readouterr().out
    assert "DENIED" in out
    assert "IL-02           DENIES" in out
    assert "'written'" in out
    path = tmp_path / "label.json"
    path.write_text(label, encoding="utf-8")
    argv = ["policy", "explain", "--preset", "pipl", "--label", f"@{path}", "--at",
            "2026-02-01", "--purpose", "face.identification", "--operation", "search"]  # fmt: skip
    assert run(argv) == 1
    out = capsys.readouterr().out
    assert "label/guard: purpose 'face.identification' is not within" in out


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["--label", "{"], "label: not JSON"),
        (["--label", "@/nonexistent/x.json"], "cannot read"),
        (["--label", json.dumps({"allowed": ["face"]})], "subject is required"),
        (["--label", json.dumps({**LABEL, "colour": 1})], "unknown key(s) colour"),
        (["--consent", json.dumps({"id": "c"})], "given_at is required"),
        (["--purpose", "face.nope"], "unknown purpose"),
        (["--at", "yesterday"], "not an ISO 8601 time"),
    ],
)
def test_explain_bad_input_is_exit_2(
    change: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["policy", "explain", "--preset", "pipl", "--purpose", "face.verification",
            "--label", json.dumps(LABEL)]  # fmt: skip
    argv += change
    assert run(argv) == 2
    assert words in capsys.readouterr().out
