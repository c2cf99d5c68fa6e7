"""The ``purposeguard`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import purposeguard as pg
from purposeguard.cli import main


def run(argv: list[str]) -> int:
    """Run the CLI; argparse's usage errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else int(e.code is not None)


EXPLAIN = ["explain", "--allowed", "face.verification"]


# -- taxonomy ------------------------------------------------------------------------------


def test_taxonomy_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["taxonomy"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("face ")
    assert "(delete only)" in lines[0]
    assert len(lines) == len(pg.Taxonomy.default())
    verification = next(line for line in lines if line.strip().startswith(".verification"))
    assert "compare" in verification
    assert "search" not in verification
    identification = next(line for line in lines if line.strip().startswith(".identification"))
    assert "search" in identification
    assert any(line.strip().startswith(".login") for line in lines)


def test_taxonomy_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["taxonomy", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    tax = pg.Taxonomy.default()
    assert set(data) == {p.name for p in tax}
    assert data["face"]["operations"] == []
    assert data["face"]["sensitive"] is True
    assert "search" in data["face.identification.closed_set_optin"]["operations"]
    assert "search" not in data["face.verification.login"]["operations"]
    assert data["face.liveness"]["operations"] == ["collect", "transform"]
    for name, entry in data.items():
        ops = {pg.Operation(o) for o in entry["operations"]}
        assert ops == set(tax.operations(name))


def test_taxonomy_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tax.toml"
    path.write_text(
        '[purposes."face.verification.kiosk"]\n'
        'operations = ["compare"]\n'
        "max_retention_days = 30\n"
        'description = "Self-service kiosk"\n',
        encoding="utf-8",
    )
    assert run(["taxonomy", "--file", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    kiosk = data["face.verification.kiosk"]
    assert kiosk["operations"] == ["compare"]
    assert kiosk["max_retention_days"] == 30
    assert kiosk["description"] == "Self-service kiosk"
    assert "face.verification.login" in data  # layered over the default
    assert run(["taxonomy", "--file", str(path)]) == 0
    assert ".kiosk" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content",
    [
        "this is [not toml",
        '[purposes."face.x"]\noperations = ["fly"]\n',
        '[purposes."Face X"]\n',
        '[purposes."face.liveness.more"]\noperations = ["reveal"]\n',  # broadens
        "[other]\nx = 1\n",
    ],
)
def test_bad_taxonomy_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    assert run(["taxonomy", "--file", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error" in captured.err
    assert str(path) in captured.err
    assert "Traceback" not in captured.err


def test_missing_taxonomy_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert run(["taxonomy", "--file", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert run([*EXPLAIN, "--purpose", "face", "--operation", "use", "--taxonomy", "/"]) == 2


# -- explain ---------------------------------------------------------------------------------


def test_explain_permitted(capsys: pytest.CaptureFixture[str]) -> None:
    code = run([*EXPLAIN, "--purpose", "face.verification.login", "--operation", "reveal"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("PERMITTED")
    assert "face.verification.login" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--purpose", "face.identification", "--operation", "search"], "not within"),
        (["--purpose", "face.verification.login", "--operation", "search"], "search"),
        (["--purpose", "face.verification", "--operation", "compare", "--prohibited",
          "face.verification.payment"], "prohibited"),
        (["--purpose", "face.verification", "--operation", "reveal",
          "--expires-in-days", "-1"], "expired"),
    ],
)  # fmt: skip
def test_explain_denied(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    assert run([*EXPLAIN, *args]) == 1
    out = capsys.readouterr().out
    assert out.startswith("DENIED")
    assert fragment in out


def test_explain_use_checks_conformance_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["explain", "--allowed", "face.liveness", "--purpose", "face.liveness",
                "--operation", "use"]) == 0  # fmt: skip
    assert run(["explain", "--allowed", "face.liveness", "--purpose", "face.liveness",
                "--operation", "reveal"]) == 1  # fmt: skip


def test_explain_delete_always_permitted(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*EXPLAIN, "--purpose", "face.analytics", "--operation", "delete"]) == 0


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*EXPLAIN, "--purpose", "face.analytics", "--operation", "reveal", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["allowed"] is False
    assert data["purpose"] == "face.analytics"
    assert data["operation"] == "reveal"
    assert data["reasons"]
    assert data["rule_ids"] == []
    assert "denied" in data["explanation"]
    ok = [*EXPLAIN, "--allowed", "face.liveness", "--purpose", "face.liveness.x"]
    assert run([*ok, "--operation", "collect", "--json"]) == 2  # unknown purpose
    capsys.readouterr()
    assert run([*EXPLAIN, "--purpose", "face.verification", "--operation", "compare",
                "--json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["allowed"] is True
    assert data["reasons"] == []
    assert "permitted" in data["explanation"]


def test_explain_with_custom_taxonomy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tax.toml"
    path.write_text('[purposes."face.verification.kiosk"]\noperations = ["compare"]\n')
    base = [*EXPLAIN, "--purpose", "face.verification.kiosk", "--taxonomy", str(path)]
    assert run([*base, "--operation", "compare"]) == 0
    assert run([*base, "--operation", "reveal"]) == 1
    assert run([*EXPLAIN, "--purpose", "face.verification.kiosk", "--operation", "compare"]) == 2


# -- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["explain"],
        ["explain", "--purpose", "face.verification"],
        [*EXPLAIN, "--purpose", "face.verification"],  # no operation
        [*EXPLAIN, "--purpose", "face.verification", "--operation", "fly"],
        [*EXPLAIN, "--purpose", "Not Valid", "--operation", "reveal"],
        [*EXPLAIN, "--purpose", "face.unknown", "--operation", "reveal"],
        ["explain", "--allowed", "face.nope", "--purpose", "face", "--operation", "use"],
        [*EXPLAIN, "--purpose", "face", "--operation", "use", "--expires-in-days", "soon"],
        [*EXPLAIN, "--purpose", "face", "--operation", "use", "--expires-in-days", "nan"],
        [*EXPLAIN, "--purpose", "face", "--operation", "use", "--expires-in-days", "inf"],
        [*EXPLAIN, "--purpose", "face", "--operation", "use", "--expires-in-days", "1e300"],
        [*EXPLAIN, "--purpose", "face", "--operation", "use", "--expires-in-days", "9999999"],
        ["taxonomy", "--bogus"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert pg.__version__ in capsys.readouterr().out
