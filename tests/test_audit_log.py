"""The tamper-evident audit log: JsonlSink, verify(), checkpoints, and the CLI."""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import hmac
import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings, strategies as st

import purposeguard as pg
from purposeguard import _cli_audit
from purposeguard.audit import (
    AuditEvent,
    JsonlSink,
    Outcome,
    VerifyResult,
    pseudonymise,
    verify,
)
from purposeguard.audit._format import MerkleTree, leaf_hash, node_hash

from .conftest import T0

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
LOGIN = "face.verification.login"


def event(i: int = 1, subject: str = "u-1", outcome: Outcome = Outcome.GRANTED) -> AuditEvent:
    return AuditEvent(
        seq=i,
        at=T0 + timedelta(seconds=i),
        operation=pg.Operation.COMPARE,
        outcome=outcome,
        purpose=pg.Purpose(LOGIN),
        template_ids=(f"t{i:04d}",),
        subjects=(subject,),
        principal="svc",
        grant_id=None,
        rule_ids=(),
        reason="permitted",
        site="tests:event",
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@contextlib.contextmanager
def sink_at(path: Path, **kw: Any) -> Iterator[JsonlSink]:
    s = JsonlSink(path, key=kw.pop("key", KEY), **kw)
    try:
        yield s
    finally:
        s.close()


def write_log(path: Path, n: int, **kw: Any) -> JsonlSink:
    with sink_at(path, **kw) as s:
        for i in range(1, n + 1):
            s.emit(event(i))
    return s


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- the happy path and the format -------------------------------------------------------


def test_round_trip_through_a_guard(log: Path, clock: pg.FrozenClock) -> None:
    with sink_at(log) as s, pg.using(pg.Guard(clock=clock, audit=s)):
        t = pg.FaceTemplate.wrap(np.ones(8), subject="u-9", purposes=LOGIN, ttl=timedelta(days=1))
        with pg.purpose(LOGIN, principal="svc"):
            t.reveal()
        with pytest.raises(pg.PurposeViolationError), pg.purpose("face.identification"):
            t.reveal()
    result = verify(log, key=KEY)
    assert result.ok, result.reason
    assert (result.entries, result.events, result.first_bad_seq) == (4, 3, None)
    assert result.log_id == s.log_id
    entries = [json.loads(raw)["entry"] for raw in lines(log)]
    assert [e["kind"] for e in entries] == ["start", "event", "event", "event"]
    assert [e["event"]["outcome"] for e in entries[1:]] == ["granted", "granted", "denied"]
    assert entries[2]["event"]["principal"] == "svc"
    assert entries[2]["event"]["subjects"] == ["u-9"]


def test_lines_are_canonical_and_carry_the_event(log: Path) -> None:
    write_log(log, 3)
    raws = lines(log)
    for n, raw in enumerate(raws):
        parsed = json.loads(raw)
        assert raw == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        assert set(parsed) == {"entry", "mac"}
        assert parsed["entry"]["seq"] == n
    first = json.loads(raws[1])["entry"]
    assert first["event"] == event(1).to_dict()
    assert first["prev"] == leaf_hash(raws[0][:-1]).hex()


def test_mac_follows_the_documented_key_schedule(log: Path) -> None:
    # An independent re-implementation of the spec in docs/reference/audit-log-format.md.
    write_log(log, 5)
    raws = [r[:-1] for r in lines(log)]
    log_id = json.loads(raws[0])["entry"]["log_id"]
    k = hmac.digest(KEY, b"purposeguard.audit.v1/log-key/" + log_id.encode(), "sha256")
    prev = "0" * 64
    for raw in raws:
        assert raw.startswith(b'{"entry":')
        assert raw[-74:-66] == b',"mac":"'
        body = raw[len(b'{"entry":') : -74]
        assert hmac.digest(k, body, "sha256").hex() == raw[-66:-2].decode()
        assert json.loads(body)["prev"] == prev
        prev = hashlib.sha256(b"\x00" + raw).hexdigest()
        k = hmac.digest(k, b"purposeguard.audit.v1/evolve", "sha256")


def test_each_sink_starts_a_new_log_with_its_own_id(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a.jsonl", 1)
    b = write_log(tmp_path / "b.jsonl", 1)
    assert a.log_id != b.log_id
    assert verify(tmp_path / "a.jsonl", key=KEY, log_id=a.log_id).ok
    wrong = verify(tmp_path / "a.jsonl", key=KEY, log_id=b.log_id)
    assert not wrong.ok
    assert wrong.first_bad_seq == 0


def test_wrong_key_fails_at_the_first_entry(log: Path) -> None:
    write_log(log, 2)
    result = verify(log, key=OTHER_KEY)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 0, 0)
    assert "MAC" in result.reason


# -- tampering -------------------------------------------------------------------------


def _edit(raws: list[bytes]) -> list[bytes]:
    raws[5] = raws[5].replace(b'"granted"', b'"denied"')
    return raws


def _delete(raws: list[bytes]) -> list[bytes]:
    del raws[5]
    return raws


def _duplicate(raws: list[bytes]) -> list[bytes]:
    raws.insert(5, raws[4])
    return raws


def _reorder(raws: list[bytes]) -> list[bytes]:
    raws[5], raws[6] = raws[6], raws[5]
    return raws


def _insert_forged(raws: list[bytes]) -> list[bytes]:
    # A well-formed entry with the right seq and prev, MACed under a guessed key.
    prev = hashlib.sha256(b"\x00" + raws[4][:-1]).hexdigest()
    body = json.loads(raws[5])["entry"]
    body["prev"] = prev
    body["event"]["reason"] = "forged"
    enc = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.digest(OTHER_KEY, enc, "sha256").hex().encode()
    raws.insert(5, b'{"entry":' + enc + b',"mac":"' + mac + b'"}\n')
    return raws


def _reformat(raws: list[bytes]) -> list[bytes]:
    raws[5] = json.dumps(json.loads(raws[5]), indent=1).replace("\n", "").encode() + b"\n"
    return raws


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_edit, "MAC"),
        (_delete, "deleted"),
        (_duplicate, "duplicated"),
        (_reorder, "reordered"),
        (_insert_forged, "MAC"),
        (_reformat, "canonical"),
    ],
    ids=["edited", "deleted", "duplicated", "reordered", "inserted", "reformatted"],
)
def test_tampering_is_found_at_its_entry(
    log: Path, tamper: Callable[[list[bytes]], list[bytes]], words: str
) -> None:
    write_log(log, 10)
    log.write_bytes(b"".join(tamper(lines(log))))
    result = verify(log, key=KEY)
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.entries == 5
    assert words in result.reason


def test_splice_from_another_log_with_the_same_key(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_log(a, 10)
    write_log(b, 10)
    raws_a, raws_b = lines(a), lines(b)
    a.write_bytes(b"".join(raws_a[:6] + raws_b[6:]))
    result = verify(a, key=KEY)
    assert (result.ok, result.first_bad_seq) == (False, 6)
    # Even the whole log replaced by another one's is a different log id.
    a.write_bytes(b"".join(raws_b))
    assert verify(a, key=KEY).log_id != json.loads(raws_a[0])["entry"]["log_id"]


def test_a_torn_last_line_is_reported(log: Path) -> None:
    write_log(log, 4)
    data = log.read_bytes()
    log.write_bytes(data[:-20])
    result = verify(log, key=KEY)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "incomplete" in result.reason


def test_an_empty_file_is_not_a_valid_log(log: Path) -> None:
    log.write_bytes(b"")
    result = verify(log, key=KEY)
    assert (result.ok, result.first_bad_seq) == (False, 0)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_byte_change_is_detected(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    path = tmp_path_factory.mktemp("mut") / "audit.jsonl"
    write_log(path, 6)
    original = path.read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != original[pos]))
    mutated = original[:pos] + bytes([new]) + original[pos + 1 :]
    path.write_bytes(mutated)
    result = verify(path, key=KEY)
    assert not result.ok
    line_of_pos = original[:pos].count(b"\n")
    assert result.first_bad_seq is not None
    assert result.first_bad_seq <= line_of_pos


def test_cut_tail_needs_a_checkpoint(log: Path) -> None:
    sk = Ed25519PrivateKey.generate()
    write_log(log, 10, checkpoint_key=sk)
    cp = Path(str(log) + ".checkpoints")
    log.write_bytes(b"".join(lines(log)[:8]))
    # Without the checkpoint the shorter log is consistent: a cut tail is undetectable.
    assert verify(log, key=KEY).ok
    result = verify(log, key=KEY, checkpoint=cp, public_key=sk.public_key())
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 8, 8)
    assert "cut" in result.reason


# -- forward integrity -----------------------------------------------------------------


def test_a_stolen_current_key_cannot_forge_the_past(log: Path) -> None:
    with sink_at(log, durability="always") as s:
        for i in range(1, 6):
            s.emit(event(i))
        stolen = bytes(s._k)  # what an intruder could read from the process now
    raws = lines(log)
    body = json.loads(raws[3])["entry"]
    body["event"]["outcome"] = "denied"
    enc = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.digest(stolen, enc, "sha256").hex().encode()
    raws[3] = b'{"entry":' + enc + b',"mac":"' + mac + b'"}\n'
    log.write_bytes(b"".join(raws))
    result = verify(log, key=KEY)
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_the_sink_forgets_its_keys(log: Path) -> None:
    s = JsonlSink(log, key=KEY, durability="always")
    s.emit(event())
    initial = hmac.digest(KEY, b"purposeguard.audit.v1/log-key/" + s.log_id.encode(), "sha256")
    held = [v for v in vars(s).values() if isinstance(v, bytes | bytearray)]
    slots = [getattr(s, n, None) for n in dir(s) if n.startswith("_") and not n.startswith("__")]
    held += [v for v in slots if isinstance(v, bytes | bytearray)]
    assert all(KEY not in bytes(v) and initial not in bytes(v) for v in held)
    s.close()
    assert bytes(s._k) == bytes(32)


# -- rotation --------------------------------------------------------------------------


def test_rotation_continues_the_chain(log: Path) -> None:
    s = write_log(log, 60, max_bytes=4096, batch_size=4)
    assert len(s.files) >= 3
    assert [p.name for p in s.files[:3]] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    result = verify(log, key=KEY)
    assert result.ok, result.reason
    assert result.events == 60
    assert result.entries == 60 + len(s.files)
    assert result.files == tuple(str(p) for p in s.files)
    for i, p in enumerate(s.files):
        start = json.loads(p.read_bytes().splitlines()[0])["entry"]
        assert (start["kind"], start["file"], start["log_id"]) == ("start", i, s.log_id)


def test_a_missing_or_swapped_rotated_file_is_found(log: Path) -> None:
    s = write_log(log, 60, max_bytes=4096, batch_size=4)
    assert len(s.files) >= 4
    saved = s.files[1].read_bytes()
    s.files[1].unlink()
    result = verify(log, key=KEY)
    assert not result.ok
    assert "audit.jsonl.1 is missing" in result.reason
    s.files[1].write_bytes(s.files[2].read_bytes())
    s.files[2].write_bytes(saved)
    result = verify(log, key=KEY)
    assert not result.ok
    assert result.first_bad_seq == json.loads(saved.splitlines()[0])["entry"]["seq"]


def test_a_deleted_last_file_is_found_by_a_checkpoint(log: Path) -> None:
    sk = Ed25519PrivateKey.generate()
    s = write_log(log, 60, max_bytes=4096, batch_size=4, checkpoint_key=sk)
    s.files[-1].unlink()
    assert verify(log, key=KEY).ok  # the earlier files are consistent by themselves
    cut = verify(log, key=KEY, checkpoint=s.checkpoint_path, public_key=sk.public_key())
    assert not cut.ok
    assert "cut" in cut.reason


# -- checkpoints -----------------------------------------------------------------------


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162, section 2.1.1, written out recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


@given(st.integers(0, 70))
def test_merkle_tree_matches_rfc_9162(n: int) -> None:
    leaves = [leaf_hash(str(i).encode()) for i in range(n)]
    tree = MerkleTree()
    for i, leaf in enumerate(leaves):
        assert tree.root() == mth(leaves[:i])
        tree.append(leaf)
    assert tree.root() == mth(leaves)
    assert tree.size == n


def test_checkpoints_are_signed_tree_heads(log: Path) -> None:
    sk = Ed25519PrivateKey.generate()
    published: list[str] = []
    s = write_log(log, 25, checkpoint_key=sk, checkpoint_every=10, on_checkpoint=published.append)
    cps = [json.loads(r) for r in lines(Path(str(log) + ".checkpoints"))]
    assert [c["checkpoint"]["tree_size"] for c in cps] == [10, 20, 26]
    assert published == [r.decode().rstrip("\n") for r in lines(Path(str(log) + ".checkpoints"))]
    leaves = [leaf_hash(r[:-1]) for r in lines(log)]
    pub = sk.public_key()
    raw_pub = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
    for c in cps:
        head = c["checkpoint"]
        assert head["root"] == mth(leaves[: head["tree_size"]]).hex()
        assert head["key_id"] == hashlib.sha256(raw_pub).hexdigest()
        assert head["log_id"] == s.log_id
        body = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
        pub.verify(bytes.fromhex(c["sig"]), b"purposeguard.audit.v1/checkpoint\n" + body)
    result = verify(log, key=KEY, checkpoint=s.checkpoint_path, public_key=raw_pub)
    assert result.ok
    assert result.checkpointed == 26


def test_checkpoint_by_time(log: Path) -> None:
    sk = Ed25519PrivateKey.generate()
    with sink_at(log, checkpoint_key=sk, checkpoint_interval=0.05) as s:
        s.emit(event())
        cp = s.checkpoint_path
        assert cp is not None
        deadline = time.monotonic() + 5
        while cp.stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(cp.read_bytes())["checkpoint"]["tree_size"] == 2


def test_checkpoint_faults(log: Path) -> None:
    sk = Ed25519PrivateKey.generate()
    s = write_log(log, 5, checkpoint_key=sk, checkpoint_every=2)
    cp = s.checkpoint_path
    assert cp is not None
    other = Ed25519PrivateKey.generate().public_key()
    wrong = verify(log, key=KEY, checkpoint=cp, public_key=other)
    assert not wrong.ok
    assert wrong.first_bad_seq is None
    assert "trusted" in wrong.reason
    good = cp.read_bytes()
    assert b'"tree_size":4' in good
    cp.write_bytes(good.replace(b'"tree_size":4', b'"tree_size":3'))
    bad_sig = verify(log, key=KEY, checkpoint=cp, public_key=sk.public_key())
    assert not bad_sig.ok
    assert "signature" in bad_sig.reason
    assert bad_sig.entries == 6  # the log itself was checked all the same
    cp.write_bytes(b"".join(reversed(good.splitlines(keepends=True))))
    assert "fewer" in verify(log, key=KEY, checkpoint=cp, public_key=sk.public_key()).reason
    with pytest.raises(pg.PolicyError, match="public_key"):
        verify(log, key=KEY, checkpoint=cp)
    with pytest.raises(pg.PolicyError, match="checkpoint"):
        verify(log, key=KEY, public_key=sk.public_key())


def test_a_checkpoint_from_another_log_is_refused(tmp_path: Path) -> None:
    sk = Ed25519PrivateKey.generate()
    a = write_log(tmp_path / "a.jsonl", 3, checkpoint_key=sk)
    b = write_log(tmp_path / "b.jsonl", 3, checkpoint_key=sk)
    assert b.checkpoint_path is not None
    assert a.checkpoint_path is not None
    result = verify(a.path, key=KEY, checkpoint=b.checkpoint_path, public_key=sk.public_key())
    assert not result.ok
    assert "another log" in result.reason


def test_failing_on_checkpoint_denies_the_access(log: Path) -> None:
    def broken(line: str) -> None:
        raise RuntimeError("publisher down")

    sk = Ed25519PrivateKey.generate()
    with sink_at(log, checkpoint_key=sk, checkpoint_every=2, on_checkpoint=broken) as s:
        s.emit(event(1))  # the start record and this one: a checkpoint is due
        with pytest.raises(pg.AuditError, match="on_checkpoint"):
            s.emit(event(2))
        s._on_cp = None  # the publisher is back
        s.emit(event(3))
    result = verify(log, key=KEY)
    assert result.ok
    assert result.events == 2
    seqs = [json.loads(r)["entry"]["event"]["seq"] for r in lines(log)[1:]]
    assert seqs == [1, 3]


# -- durability and concurrency ---------------------------------------------------------


def test_always_is_on_disk_when_emit_returns(log: Path) -> None:
    with sink_at(log, durability="always") as s:
        s.emit(event())
        assert len(lines(log)) == 2


@pytest.mark.parametrize("durability", ["batch", "none"])
def test_batches_are_committed_by_size_and_flush(log: Path, durability: Any) -> None:
    with sink_at(log, durability=durability, batch_size=3, batch_interval=60) as s:
        s.emit(event(1))
        s.emit(event(2))
        assert len(lines(log)) == 1
        s.emit(event(3))
        assert len(lines(log)) == 4
        s.emit(event(4))
        s.flush()
        assert len(lines(log)) == 5


def test_batches_are_committed_by_time(log: Path) -> None:
    with sink_at(log, batch_interval=0.02) as s:
        s.emit(event())
        deadline = time.monotonic() + 5
        while len(lines(log)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(lines(log)) == 2


def test_concurrent_emitters(log: Path) -> None:
    with sink_at(log, batch_size=16) as s:

        def work(t: int) -> None:
            for i in range(300):
                s.emit(event(t * 1000 + i))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    result = verify(log, key=KEY)
    assert result.ok
    assert result.events == 1800
    seen = {json.loads(r)["entry"]["event"]["seq"] for r in lines(log)[1:]}
    assert seen == {t * 1000 + i for t in range(6) for i in range(300)}


# -- what the log holds -----------------------------------------------------------------


def test_subjects_can_be_pseudonymised(log: Path) -> None:
    pkey = b"p" * 32
    with sink_at(log, pseudonymise_key=pkey) as s:
        s.emit(event(1, subject="alice-1987"))
    text = log.read_text()
    assert "alice-1987" not in text
    nym = pseudonymise("alice-1987", key=pkey)
    assert nym.startswith("p:")
    assert len(nym) == 34
    assert json.loads(lines(log)[1])["entry"]["event"]["subjects"] == [nym]
    assert nym != pseudonymise("alice-1987", key=b"q" * 32)
    assert verify(log, key=KEY).ok


def test_no_template_value_enters_the_log(log: Path, clock: pg.FrozenClock) -> None:
    values = np.array([0.7315926535, -0.4142135623, 0.2718281828, 0.1618033988])
    with sink_at(log, durability="always") as s, pg.using(pg.Guard(clock=clock, audit=s)):
        t = pg.FaceTemplate.wrap(values, subject="u-1", purposes=LOGIN, ttl=timedelta(days=1))
        with pg.purpose(LOGIN):
            t.reveal()
            pg.similarity(t, values)
        with pytest.raises(pg.PurposeViolationError), pg.purpose("face.identification"):
            t.reveal()
    text = log.read_text()
    assert verify(log, key=KEY).events == 4
    for v in values:
        for rendering in (repr(float(v)), f"{v:.6f}", f"{v:.4f}"[1:], repr(np.float32(v))):
            assert rendering.lstrip("-") not in text


# -- a sink that cannot write denies the access -----------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount(8)); skipped where it cannot be mounted."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(  # noqa: S603 - fixed arguments, no user input
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("tmpfs could not be mounted here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)  # noqa: S603, S607 - fixed arguments


def test_disk_full_denies_the_access(tiny_disk: Path, clock: pg.FrozenClock) -> None:
    path = tiny_disk / "audit.jsonl"
    revealed = 0
    with sink_at(path, durability="always") as s, pg.using(pg.Guard(clock=clock, audit=s)):
        t = pg.FaceTemplate.wrap(np.ones(4), subject="u-1", purposes=LOGIN, ttl=timedelta(days=1))
        with pg.purpose(LOGIN):
            failure: pg.AuditError | None = None
            for _ in range(10_000):
                try:
                    t.reveal()
                except pg.AuditError as e:
                    failure = e
                    break
                revealed += 1
            assert failure is not None, "the disk never filled"
            assert isinstance(failure.__cause__, pg.AuditError)
            assert "ENOSPC" in str(failure.__cause__)
            with pytest.raises(pg.AuditError):  # and it stays denied while the disk is full
                t.reveal()
        # Free the disk: the sink goes on with the chain intact.
        (tiny_disk / "filler").write_bytes(b"")
    result = verify(path, key=KEY)
    assert result.ok, result.reason
    assert result.events == 1 + revealed  # the COLLECT and every reveal that went ahead


def test_a_failed_batch_write_is_rolled_back(log: Path) -> None:
    # RLIMIT_FSIZE makes writes past a size fail (EFBIG), without root.
    s = JsonlSink(log, key=KEY, batch_size=4, batch_interval=60)
    try:
        for i in range(1, 4):
            s.emit(event(i))
        size = log.stat().st_size
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300, hard))
        try:
            with pytest.raises(pg.AuditError, match="EFBIG"):
                s.emit(event(4))  # commits the batch, which does not fit
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old_handler)
        assert log.stat().st_size == size  # nothing half-written
        assert verify(log, key=KEY).ok
        s.emit(event(5))  # room again: the batch and this event go in
        s.flush()
    finally:
        s.close()
    result = verify(log, key=KEY)
    assert result.ok
    seqs = [json.loads(r)["entry"]["event"]["seq"] for r in lines(log)[1:]]
    assert seqs == [1, 2, 3, 5]  # the event whose emit raised is not in the log


def test_a_failed_fsync_breaks_the_sink(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = JsonlSink(log, key=KEY, durability="always")
    try:
        s.emit(event(1))

        def fail(fd: int) -> None:
            raise OSError(errno.EIO, "I/O error")

        monkeypatch.setattr(os, "fsync", fail)
        with pytest.raises(pg.AuditError, match="EIO"):
            s.emit(event(2))
        monkeypatch.undo()
        with pytest.raises(pg.AuditError, match="start a new log"):
            s.emit(event(3))
    finally:
        s.close()
    result = verify(log, key=KEY)
    assert result.ok
    assert result.events == 1


# -- bad arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"key": b"short"}, "at least 32"),
        ({"key": "x" * 32}, "bytes"),
        ({"durability": "sometimes"}, "durability"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_interval": float("nan")}, "batch_interval"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"checkpoint_key": b"k" * 32}, "Ed25519PrivateKey"),
        ({"checkpoint_path": "cp"}, "checkpoint_key"),
        ({"pseudonymise_key": b"k"}, "pseudonymise_key"),
    ],
)
def test_bad_arguments(log: Path, kw: dict[str, Any], match: str) -> None:
    kw.setdefault("key", KEY)
    with pytest.raises(pg.PolicyError, match=match):
        JsonlSink(log, **kw)
    assert not log.exists()


def test_an_existing_log_is_never_appended_to(log: Path) -> None:
    write_log(log, 1)
    before = log.read_bytes()
    with pytest.raises(pg.PolicyError, match="already exists"):
        JsonlSink(log, key=KEY)
    assert log.read_bytes() == before


def test_closed_sink_refuses_events(log: Path) -> None:
    s = write_log(log, 1)
    with pytest.raises(pg.AuditError, match="closed"):
        s.emit(event())
    with pytest.raises(pg.AuditError, match="AuditEvent"):
        s.emit("not an event")  # type: ignore[arg-type]
    s.close()  # closing again is harmless
    assert "closed" in repr(s)
    assert "key" not in repr(s).lower()


def test_verify_arguments(log: Path) -> None:
    write_log(log, 1)
    with pytest.raises(pg.PolicyError):
        verify(log, key=b"short")
    with pytest.raises(pg.PolicyError, match="log_id"):
        verify(log, key=KEY, log_id="nope")
    with pytest.raises(FileNotFoundError):
        verify(log.with_name("missing.jsonl"), key=KEY)
    assert isinstance(verify(log, key=KEY), VerifyResult)


# -- the command line -------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="purposeguard")
    sub = parser.add_subparsers(dest="command")
    _cli_audit.register(sub)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return int(args.func(args))


@pytest.fixture
def signed_log(tmp_path: Path) -> tuple[Path, Path, Ed25519PrivateKey]:
    sk = Ed25519PrivateKey.generate()
    s = write_log(tmp_path / "audit.jsonl", 8, checkpoint_key=sk)
    assert s.checkpoint_path is not None
    return s.path, s.checkpoint_path, sk


@pytest.mark.parametrize("form", ["raw", "hex"])
def test_cli_valid(
    signed_log: tuple[Path, Path, Ed25519PrivateKey],
    tmp_path: Path,
    form: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, cp, sk = signed_log
    kf, pf = tmp_path / "k", tmp_path / "p"
    pub = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if form == "raw":
        kf.write_bytes(KEY)
        pf.write_bytes(pub)
    else:
        kf.write_text(KEY.hex() + "\n")
        pf.write_text(pub.hex())
    assert cli(["audit", "verify", str(path), "--key-file", str(kf)]) == 0
    assert capsys.readouterr().out.startswith("OK: 9 entries (8 events)")
    argv = ["audit", "verify", str(path), "--key-file", str(kf), "--checkpoint", str(cp)]
    assert cli([*argv, "--public-key-file", str(pf), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert out["checkpointed"] == 9
    assert out["first_bad_seq"] is None


def test_cli_tampered(
    signed_log: tuple[Path, Path, Ed25519PrivateKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, cp, sk = signed_log
    kf, pf = tmp_path / "k", tmp_path / "p.pem"
    kf.write_bytes(KEY)
    pf.write_bytes(sk.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    path.write_bytes(b"".join(_delete(lines(path))))
    assert cli(["audit", "verify", str(path), "--key-file", str(kf)]) == 1
    assert "first bad seq 5" in capsys.readouterr().out
    path.write_bytes(b"".join(lines(path)[:5]))
    argv = ["audit", "verify", str(path), "--key-file", str(kf), "--checkpoint", str(cp)]
    assert cli([*argv, "--public-key-file", str(pf), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["first_bad_seq"]) == (False, 5)


def test_cli_usage_errors(
    signed_log: tuple[Path, Path, Ed25519PrivateKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, cp, _ = signed_log
    kf = tmp_path / "k"
    kf.write_bytes(KEY)
    base = ["audit", "verify", str(path)]
    assert cli(base) == 2  # --key-file is required
    assert cli([*base, "--key-file", str(tmp_path / "none")]) == 2
    assert cli(["audit", "verify", str(tmp_path / "none"), "--key-file", str(kf)]) == 2
    assert cli([*base, "--key-file", str(kf), "--checkpoint", str(cp)]) == 2
    assert "--public-key-file" in capsys.readouterr().err
    (tmp_path / "short").write_text("abcd")
    assert cli([*base, "--key-file", str(tmp_path / "short")]) == 2
    (tmp_path / "empty").write_text("")
    assert cli([*base, "--key-file", str(tmp_path / "empty")]) == 2
    (tmp_path / "badpub").write_bytes(b"x" * 5)
    argv = [*base, "--key-file", str(kf), "--checkpoint", str(cp)]
    assert cli([*argv, "--public-key-file", str(tmp_path / "badpub")]) == 2
    err = capsys.readouterr().err
    assert KEY.hex() not in err
