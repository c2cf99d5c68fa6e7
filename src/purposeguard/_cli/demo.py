"""`purposeguard demo`: the library's main job, end to end, in a few seconds.

One deployment with one SQLite store: synthetic 512-d face templates are enrolled
under several purposes (login and payment verification, door access, an opt-in
identification programme, visitor counting); permitted 1:1 verifications and 1:N
searches run; an out-of-purpose search is blocked, then let through in audit mode;
the clock moves on so that templates expire and are purged; a subject is erased; and
the audit log is summarised. Everything runs under a guard of its own (a frozen
clock, an in-memory audit sink) put in force with [`using`][purposeguard.using], so the
process default is untouched. No template values are ever printed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from purposeguard._clock import FrozenClock
from purposeguard._errors import AccessDeniedError, PurposeWarning, TemplateNotFoundError
from purposeguard._events import AuditEvent, MemorySink
from purposeguard._guard import Guard, Mode, using
from purposeguard._scope import purpose, similarity
from purposeguard._template import FaceTemplate
from purposeguard.stores import GuardedStore, Match, SQLiteBackend

from . import CommandError
from .progress import Progress

__all__ = ["add_parser", "run_demo"]

DIM = 512
STORE_NAME = "purposeguard-demo.db"
MIN_N = 100
MAX_N = 100_000
# Templates per enrolment transaction (one audit event each).
BATCH = 500
# Noise added to a subject's identity vector for each capture: genuine pairs score
# about 0.89, impostor pairs about 0.
NOISE = 0.35
THRESHOLD = 0.6
ADVANCE = timedelta(days=31)

LOGIN = "face.verification.login"
PAYMENT = "face.verification.payment"
DOOR = "face.verification.access_control"
OPTIN = "face.identification.closed_set_optin"
COUNTING = "face.analytics.counting"


@dataclass(frozen=True)
class _Enrolment:
    # What one synthetic template is for.
    purposes: tuple[str, ...]
    ttl: timedelta
    consent: bool


# Who enrols, with what templates. A customer signs in (and half of them also pay)
# with their face; an employee opens doors on a 30-day badge; a member of the opt-in
# programme may be recognised 1:N and also signs in; a visitor is only counted.
_PROFILES: dict[str, tuple[float, tuple[_Enrolment, ...]]] = {
    "customer": (0.30, (_Enrolment((LOGIN,), timedelta(days=365), True),)),
    "payer": (
        0.10,
        (
            _Enrolment((LOGIN,), timedelta(days=365), True),
            _Enrolment((PAYMENT,), timedelta(days=180), True),
        ),
    ),
    "employee": (0.18, (_Enrolment((DOOR,), timedelta(days=30), True),)),
    "member": (
        0.22,
        (
            _Enrolment((OPTIN,), timedelta(days=365), True),
            _Enrolment((LOGIN,), timedelta(days=365), True),
        ),
    ),
    "visitor": (0.20, (_Enrolment((COUNTING,), timedelta(days=7), False),)),
}


@dataclass
class _Planned:
    subject: str
    profile: str
    identity: int
    enrolment: _Enrolment


@dataclass
class _Population:
    identities: npt.NDArray[np.float32]
    plan: list[_Planned]
    ids: list[str] = field(default_factory=list)  # template ids, in plan order

    def where(self, purpose_name: str) -> list[int]:
        return [i for i, e in enumerate(self.plan) if purpose_name in e.enrolment.purposes]

    def subjects_of(self, profile: str) -> list[str]:
        return sorted({e.subject for e in self.plan if e.profile == profile})


class DemoError(Exception):
    """The library did not behave as the demo expects (exit status 1)."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoError(f"demo expectation failed: {what}")


def _plan(n: int, rng: np.random.Generator) -> _Population:
    names = list(_PROFILES)
    weights = np.array([_PROFILES[k][0] for k in names])
    plan: list[_Planned] = []
    counters: Counter[str] = Counter()
    # The first subjects cover every profile, so that even a small demo has each.
    order = iter(names)
    subjects = 0
    while len(plan) < n:
        profile = next(order, None) or names[int(rng.choice(len(names), p=weights))]
        counters[profile] += 1
        subject = f"{profile}-{counters[profile]:05d}"
        for enrolment in _PROFILES[profile][1]:
            if len(plan) < n:
                plan.append(_Planned(subject, profile, subjects, enrolment))
        subjects += 1
    identities = rng.standard_normal((subjects, DIM)).astype(np.float32)
    return _Population(identities=identities, plan=plan)


def _capture(pop: _Population, identity: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    # A new capture of one subject's face, as a face model would embed it.
    noise = rng.standard_normal(DIM).astype(np.float32)
    face: npt.NDArray[np.float32] = pop.identities[identity] + np.float32(NOISE) * noise
    return face


class _Report:
    # Text output (headings, lines) and the JSON summary, built side by side.

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.summary: dict[str, Any] = {}
        self._section = 0

    def heading(self, title: str, *, numbered: bool = True) -> None:
        self._section += numbered
        text = f"{self._section}. {title}" if numbered else title
        self.line()
        self.line(text)
        self.line("-" * len(text))

    def line(self, text: str = "") -> None:
        if not self.json_mode:
            print(text)


def _short(template_id: str) -> str:
    return template_id[:12]


def _matches_table(report: _Report, matches: list[Match], note: Callable[[Match], str]) -> None:
    report.line(f"  {'rank':>4}  {'template':<12}  {'score':>6}  subject")
    for rank, m in enumerate(matches, 1):
        extra = note(m)
        report.line(
            f"  {rank:>4}  {_short(m.template_id):<12}  {m.score:>6.3f}  {m.subject}"
            + (f"  {extra}" if extra else "")
        )


def _match_dicts(matches: list[Match]) -> list[dict[str, Any]]:
    return [
        {"template_id": m.template_id, "subject": m.subject, "score": round(m.score, 6)}
        for m in matches
    ]


@contextmanager
def _timed(times: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        times[name] = round(time.perf_counter() - start, 3)


def _event_line(index: int, e: AuditEvent) -> str:
    op = "use" if e.operation is None else e.operation.value
    p = "-" if e.purpose is None else e.purpose.name
    ids = len(e.template_ids)
    templates = f"{ids} template{'s' * (ids != 1)}"
    reason = e.reason if len(e.reason) <= 64 else e.reason[:61] + "..."
    return f"  #{index:<5} {e.outcome.value:<10} {op:<8} {p:<36} {templates:<12} {reason}"


def run_demo(*, directory: Path | None, n: int, seed: int, json_mode: bool) -> dict[str, Any]:
    """Run the demo; print it (or nothing, with *json_mode*) and return the summary.

    The store is `purposeguard-demo.db` in *directory* (created if missing; the file
    must not exist yet) or in a temporary folder that is removed at the end.

    Raises:
        CommandError: the store file already exists, or *directory* is not a folder.
        DemoError: the library did not behave as the demo expects.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    report = _Report(json_mode)
    summary = report.summary
    times: dict[str, float] = {}
    with ExitStack() as stack:
        if directory is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pg-demo-")))
        else:
            if directory.exists() and not directory.is_dir():
                raise CommandError(f"--dir {directory} exists and is not a folder")
            directory.mkdir(parents=True, exist_ok=True)
            folder = directory
        path = folder / STORE_NAME
        if path.exists():
            raise CommandError(
                f"{path} already exists: remove it, or give another --dir (the demo "
                "enrols into a fresh store)"
            )
        clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
        sink = MemorySink()
        guard = Guard(clock=clock, audit=sink, mode=Mode.ENFORCE)
        stack.enter_context(using(guard))
        store = stack.enter_context(GuardedStore(SQLiteBackend(path)))
        start = clock.now()
        summary.update(
            store=str(path),
            kept=directory is not None,
            n=n,
            seed=seed,
            dim=DIM,
            clock_start=start.isoformat(),
        )
        report.line(
            "purposeguard demo: one face-recognition deployment, from enrolment to erasure"
        )
        report.line(f"store  {path} (SQLite, WAL)")
        report.line(f"guard  enforce mode, audit events kept in memory, clock frozen at {start}")

        pop = _plan(n, rng)
        _enrol(report, store, pop, rng, times)
        _verify(report, store, pop, rng, times)
        _identify(report, store, pop, rng, times)
        _blocked(report, store, pop, rng)
        _audit_mode(report, store, pop, guard)
        _expiry(report, store, pop, clock, times)
        _erasure(report, store, pop, rng)
        _audit_log(report, sink)

        times["total"] = round(time.perf_counter() - started, 3)
        summary["seconds"] = times
        report.heading("Done", numbered=False)
        report.line(
            f"{n:,} templates enrolled, searched, expired, purged and erased in "
            f"{times['total']:.1f} s"
        )
        if directory is None:
            report.line("the store was in a temporary folder and has been removed")
        else:
            erased = summary["erasure"]["subject"]
            probe = next(pop.ids[i] for i in pop.where(OPTIN) if pop.plan[i].subject != erased)
            where = shlex.quote(str(path))
            report.line("the store is kept; try:")
            report.line(f"  purposeguard store stats {where}")
            report.line(
                f"  purposeguard store search {where} --purpose {OPTIN} --probe-id {probe} -k 5"
            )
    return summary


def _enrol(
    report: _Report,
    store: GuardedStore,
    pop: _Population,
    rng: np.random.Generator,
    times: dict[str, float],
) -> None:
    report.heading("Enrolment: every template is labelled the moment it is collected")
    n = len(pop.plan)
    with _timed(times, "enrol"), Progress("enrolling", total=n) as bar:
        for lo in range(0, n, BATCH):
            batch: list[FaceTemplate] = []
            for planned in pop.plan[lo : lo + BATCH]:
                e = planned.enrolment
                batch.append(
                    FaceTemplate.wrap(
                        _capture(pop, planned.identity, rng),
                        subject=planned.subject,
                        purposes=e.purposes,
                        ttl=e.ttl,
                        consent=f"consent-{planned.subject}" if e.consent else None,
                    )
                )
            pop.ids += store.enrol_many(batch)  # one transaction, one audit event
            bar.update(len(batch))
    _expect(len(store) == n, "every template was enrolled")
    by_purpose: Counter[str] = Counter()
    ttl_of: dict[str, timedelta] = {}
    for planned in pop.plan:
        for p in planned.enrolment.purposes:
            by_purpose[p] += 1
            ttl_of[p] = planned.enrolment.ttl
    subjects = len(pop.identities)
    report.line(
        f"enrolled {n:,} synthetic {DIM}-d templates of {subjects:,} subjects in "
        f"{times['enrol']:.2f} s ({n / max(times['enrol'], 1e-9):,.0f}/s), "
        f"in batches of {BATCH}"
    )
    report.line(f"  {'purpose':<36} {'templates':>9}  kept for")
    for p, count in sorted(by_purpose.items()):
        report.line(f"  {p:<36} {count:>9,}  {ttl_of[p].days} days")
    report.summary["enrolled"] = {
        "templates": n,
        "subjects": subjects,
        "by_purpose": dict(sorted(by_purpose.items())),
    }


def _pick(rng: np.random.Generator, items: list[int], count: int) -> list[int]:
    chosen = rng.choice(len(items), size=min(count, len(items)), replace=False)
    return [items[int(i)] for i in chosen]


def _verify(
    report: _Report,
    store: GuardedStore,
    pop: _Population,
    rng: np.random.Generator,
    times: dict[str, float],
) -> None:
    report.heading(f"1:1 verification under {LOGIN}")
    login = pop.where(LOGIN)
    tries = _pick(rng, login, 200)
    genuine = impostor = 0
    example: dict[str, Any] = {}
    with _timed(times, "verify"), purpose(LOGIN):
        for j, i in enumerate(tries):
            planned = pop.plan[i]
            enrolled = store.get(pop.ids[i])  # a fetch under the purpose, audited
            live = _capture(pop, planned.identity, rng)
            other = (planned.identity + 1 + int(rng.integers(len(pop.identities) - 1))) % len(
                pop.identities
            )
            fake = _capture(pop, other, rng)
            g, f = similarity(live, enrolled), similarity(fake, enrolled)
            genuine += g >= THRESHOLD
            impostor += f >= THRESHOLD
            if j == 0:
                example = {"subject": planned.subject, "genuine": g, "impostor": f}
    report.line(
        f"subject {example['subject']} signs in: live capture vs enrolled template "
        f"scores {example['genuine']:.3f} -> accepted (threshold {THRESHOLD})"
    )
    report.line(f"someone else tries the same account: {example['impostor']:.3f} -> rejected")
    report.line(
        f"{len(tries)} sign-ins: {genuine} of {len(tries)} genuine attempts accepted, "
        f"{impostor} of {len(tries)} impostor attempts accepted ({times['verify']:.2f} s)"
    )
    _expect(genuine == len(tries) and impostor == 0, "verification separates people")
    report.summary["verification"] = {
        "purpose": LOGIN,
        "threshold": THRESHOLD,
        "attempts": len(tries),
        "genuine_accepted": int(genuine),
        "impostor_accepted": int(impostor),
    }


def _optin_probe(pop: _Population, i: int, rng: np.random.Generator) -> FaceTemplate:
    planned = pop.plan[i]
    return FaceTemplate.wrap(
        _capture(pop, planned.identity, rng),
        subject=planned.subject,
        purposes=OPTIN,
        ttl=timedelta(minutes=5),
    )


def _identify(
    report: _Report,
    store: GuardedStore,
    pop: _Population,
    rng: np.random.Generator,
    times: dict[str, float],
) -> None:
    report.heading(f"1:N identification under {OPTIN}")
    members = pop.where(OPTIN)
    permitted = set(members)
    tries = _pick(rng, members, 100)
    hits = 0
    example: list[Match] = []
    who = pop.plan[tries[0]].subject
    with _timed(times, "identify"), purpose(OPTIN):
        for j, i in enumerate(tries):
            probe = _optin_probe(pop, i, rng)
            matches = store.search(probe, k=5)
            hits += bool(matches) and matches[0].subject == pop.plan[i].subject
            if j == 0:
                example = matches
    report.line(
        f"a camera at the members' entrance sees {who}; the top 5 among the "
        f"{len(permitted):,} opted-in templates:"
    )
    _matches_table(report, example, lambda m: "<- the member" if m.subject == who else "")
    report.line(
        f"the other {len(pop.plan) - len(permitted):,} templates (verification, door, "
        "analytics) were filtered out inside the engine, before ranking"
    )
    report.line(
        f"{len(tries)} searches: the right member ranked first {hits} times "
        f"({times['identify']:.2f} s)"
    )
    allowed_ids = {pop.ids[i] for i in permitted}
    _expect(all(m.template_id in allowed_ids for m in example), "search stays in its gallery")
    _expect(hits == len(tries), "identification finds opted-in members")
    report.summary["identification"] = {
        "purpose": OPTIN,
        "gallery": len(permitted),
        "searches": len(tries),
        "rank1": int(hits),
        "example": {"subject": who, "matches": _match_dicts(example)},
    }


def _a_login_of_a_customer(pop: _Population) -> int:
    # A customer's sign-in enrolment: collected for 1:1 verification only.
    return next(i for i in pop.where(LOGIN) if pop.plan[i].profile == "customer")


def _blocked(
    report: _Report, store: GuardedStore, pop: _Population, rng: np.random.Generator
) -> None:
    report.heading("Out of purpose: blocked, explained and audited")
    i = _a_login_of_a_customer(pop)
    subject, tid = pop.plan[i].subject, pop.ids[i]
    with purpose(LOGIN):
        enrolled = store.get(tid)
    blocked: list[dict[str, str]] = []

    def attempt(what: str, action: Callable[[], object]) -> None:
        report.line(what)
        try:
            action()
        except (AccessDeniedError, TemplateNotFoundError) as err:
            report.line(f"  BLOCKED {type(err).__name__}: {err}")
            blocked.append({"what": what, "error": type(err).__name__, "message": str(err)})
        else:
            raise DemoError(f"demo expectation failed: not blocked: {what}")

    def search_under(p: str) -> Callable[[], object]:
        def run() -> object:
            with purpose(p):
                return store.search(enrolled, k=5)

        return run

    def fetch_under(p: str) -> Callable[[], object]:
        def run() -> object:
            with purpose(p):
                return store.get(tid)

        return run

    attempt(
        f"a sign-in enrolment of {subject} used as the probe of a 1:N search under {OPTIN}:",
        search_under(OPTIN),
    )
    attempt(
        f"a 1:N search under {LOGIN} itself (1:1 purposes have no search):",
        search_under(LOGIN),
    )
    attempt(
        f"fetching that enrolment by id under {OPTIN} (reported as missing: no enrolment oracle):",
        fetch_under(OPTIN),
    )
    report.summary["blocked"] = blocked


def _audit_mode(report: _Report, store: GuardedStore, pop: _Population, guard: Guard) -> None:
    report.heading("The same in audit mode (roll-out): would_deny, a warning, and it proceeds")
    i = _a_login_of_a_customer(pop)
    with purpose(LOGIN):
        enrolled = store.get(pop.ids[i])
    gallery = {pop.ids[j] for j in pop.where(OPTIN)}
    results: list[dict[str, Any]] = []
    shadow = guard.evolve(mode=Mode.AUDIT)  # same clock, same audit sink
    with using(shadow):
        for p in (OPTIN, LOGIN):
            with warnings.catch_warnings(record=True) as caught, purpose(p):
                warnings.simplefilter("always", PurposeWarning)
                matches = store.search(enrolled, k=5)
            warned = [w for w in caught if issubclass(w.category, PurposeWarning)]
            _expect(len(warned) == 1, "audit mode warns once per would-deny")
            outside = [m for m in matches if m.template_id not in gallery]
            report.line(f"the sign-in enrolment as a 1:N probe under {p}:")
            report.line(f"  PurposeWarning: {warned[0].message}")
            if matches:
                report.line(
                    f"  the search proceeded: {len(matches)} matches, all "
                    f"{len(matches) - len(outside)} from the opted-in gallery"
                )
            else:
                report.line(
                    "  the search proceeded and returned nothing: no template permits "
                    f"search under {p}"
                )
            _expect(not outside, "audit mode searches only the permitted gallery")
            results.append(
                {
                    "purpose": p,
                    "outcome": "would_deny",
                    "warning": str(warned[0].message),
                    "matches": len(matches),
                    "outside_gallery": len(outside),
                }
            )
    report.line(
        "audit mode records what enforce mode would refuse, without ever widening a search"
    )
    report.summary["audit_mode"] = results


def _expiry(
    report: _Report,
    store: GuardedStore,
    pop: _Population,
    clock: FrozenClock,
    times: dict[str, float],
) -> None:
    report.heading(f"Time passes ({ADVANCE.days} days): templates expire and are purged")
    before = len(store)
    clock.advance(ADVANCE)
    now = clock.now()
    # Every template was collected at the start (the clock stood still until now).
    expired = [planned for planned in pop.plan if planned.enrolment.ttl <= ADVANCE]
    report.line(f"clock advanced to {now}")
    door = next(i for i in pop.where(DOOR))
    try:
        with purpose(DOOR):
            store.get(pop.ids[door])
    except TemplateNotFoundError as err:
        report.line(f"an expired door badge is no longer found: {err}")
    else:
        raise DemoError("demo expectation failed: an expired template was returned")
    report.line(
        f"{len(expired):,} expired templates are still stored ({before:,} in all) but "
        "invisible to every purpose"
    )
    with _timed(times, "purge"):
        removed = store.purge_expired()
    report.line(
        f"purge_expired() removed {removed:,} templates in {times['purge'] * 1000:.0f} ms; "
        f"{len(store):,} remain"
    )
    _expect(removed == len(expired), "purge removes exactly the expired templates")
    report.summary["expiry"] = {
        "advanced_days": ADVANCE.days,
        "clock": now.isoformat(),
        "purged": removed,
        "remaining": len(store),
    }


def _erasure(
    report: _Report, store: GuardedStore, pop: _Population, rng: np.random.Generator
) -> None:
    report.heading("Erasure: a member asks to be forgotten")
    members = pop.where(OPTIN)
    i = members[len(members) // 2]
    subject = pop.plan[i].subject
    before = len(store)
    removed = store.erase_subject(subject)
    report.line(
        f"erase_subject({subject!r}) removed {removed} templates (sign-in and opt-in); "
        f"{len(store):,} remain of {before:,}"
    )
    with purpose(OPTIN):
        matches = store.search(_optin_probe(pop, i, rng), k=3)
    report.line(f"a new capture of {subject} now finds only other people:")
    _matches_table(report, matches, lambda m: "")
    _expect(removed == 2 and all(m.subject != subject for m in matches), "erasure is complete")
    report.summary["erasure"] = {
        "subject": subject,
        "removed": removed,
        "remaining": len(store),
        "best_score_after": round(matches[0].score, 6) if matches else None,
    }


def _audit_log(report: _Report, sink: MemorySink) -> None:
    report.heading("What the audit log recorded")
    events = list(sink.events)
    counts: Counter[tuple[str, str]] = Counter(
        ("use" if e.operation is None else e.operation.value, e.outcome.value) for e in events
    )
    outcomes = ("granted", "denied", "would_deny")
    operations = sorted({op for op, _ in counts})
    report.line(f"{len(events):,} events, one per checked access (ids and purposes, no values)")
    report.line(f"  {'operation':<10}" + "".join(f"{o:>12}" for o in outcomes))
    for op in operations:
        report.line(f"  {op:<10}" + "".join(f"{counts[op, o]:>12,}" for o in outcomes))
    last = 8
    report.line(f"the last {last}:")
    start = len(events) - min(last, len(events)) + 1
    for index, e in enumerate(events[-last:], start):
        report.line(_event_line(index, e))
    by_op: dict[str, dict[str, int]] = {}
    for (op, outcome), count in sorted(counts.items()):
        by_op.setdefault(op, {})[outcome] = count
    _expect(counts["search", "denied"] >= 2, "the blocked searches are in the log")
    _expect(counts["search", "would_deny"] == 2, "the audit-mode searches are in the log")
    report.summary["audit"] = {
        "events": len(events),
        "by_operation": by_op,
        "last": [e.to_dict() for e in events[-last:]],
    }


def _cmd_demo(args: argparse.Namespace) -> int:
    directory = None if args.dir is None else Path(args.dir)
    try:
        summary = run_demo(directory=directory, n=args.n, seed=args.seed, json_mode=args.json)
    except DemoError as e:
        raise CommandError(str(e), code=1) from None
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _count(text: str) -> int:
    # argparse type: a template count the demo accepts.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not MIN_N <= value <= MAX_N:
        raise argparse.ArgumentTypeError(f"must be between {MIN_N} and {MAX_N:,}")
    return value


def _seed(text: str) -> int:
    # argparse type: a non-negative integer seed.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative integer")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `demo` to the top-level subparsers *sub*."""
    demo = sub.add_parser(
        "demo",
        help="run the main job end to end on synthetic templates",
        description=(
            "Create an SQLite store, enrol synthetic 512-d face templates under several "
            "purposes, run permitted verifications and searches, show an out-of-purpose "
            "search blocked (enforce mode) and let through with a warning (audit mode), "
            "expire and purge templates, erase a subject, and summarise the audit log. "
            "Exit status: 0 success, 1 the library did not behave as expected, 2 usage "
            "error."
        ),
    )
    demo.add_argument(
        "--dir",
        metavar="DIR",
        help=f"keep the store as DIR/{STORE_NAME} (default: a temporary folder, removed)",
    )
    demo.add_argument(
        "--n",
        type=_count,
        default=3000,
        metavar="N",
        help=f"how many templates to enrol ({MIN_N}-{MAX_N:,}; default 3000)",
    )
    demo.add_argument("--seed", type=_seed, default=0, metavar="S", help="random seed (default 0)")
    demo.add_argument("--json", action="store_true", help="print a JSON summary instead")
    demo.set_defaults(func=_cmd_demo)
