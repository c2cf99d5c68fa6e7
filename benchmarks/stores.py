"""Store benchmark: guarded search against the raw engines, enrolment, purge, memory.

Run ``python benchmarks/stores.py`` (N = 100,000 and 1,000,000; a few minutes and about
12 GB of memory at the peak) or ``python benchmarks/stores.py --quick`` (N = 100,000
only, under a minute). ``--sizes 100000,1000000`` chooses the sizes, ``--queries`` the
number of probes per figure (at least 15), ``--no-faiss`` skips faiss.

Everything is 512-d float32 and measured in one process, so the ratios compare like
with like:

1. Search. A 1:N search with k = 10 through ``GuardedStore.search`` (a ``Guard`` with
   a ``MemorySink`` and a frozen clock, inside ``purpose(...)``), against the raw
   engine's own unfiltered search over the same vectors: ``MemoryBackend`` against plain
   numpy (``X @ q`` then ``argpartition`` for the top 10), and ``FaissBackend("flat",
   threads=1)`` against a bare ``faiss.IndexFlatIP`` searched with one OpenMP thread.
   Each store holds every template once; the labels are arranged so that searching
   under three purposes lets 100%, 25% and 1% of the templates through (every block of
   100 consecutive templates holds exactly 75, 24 and 1 of the three kinds of label).
   The store is grown once, in batches; the searches at each N run when it reaches N.
   Each figure is the median over the probes; the guarded and the raw search of one
   probe run back to back (alternating which goes first), so both see the same load.
   The ratio is median guarded over median raw; "per probe" is the median of the
   ratios of the two searches of each probe, which a busy machine disturbs less.
2. ``enrol_many`` into a ``MemoryBackend`` (growing from its default capacity),
   templates/s over batches of 10,000, outside any purpose scope (each template is
   checked under its own purpose), with the batch wrapped beforehand, untimed.
   Templates are made with ``FaceTemplate._new`` over rows of one read-only matrix and
   *shared* ``Label`` objects, one per (kind of label, expiry, subject bucket), with
   4,096 subjects: wrapping a million templates through ``FaceTemplate.wrap`` would take
   minutes of setup. The time this takes, and what ``wrap`` itself costs per template,
   are printed separately, as is the time spent in the batches that doubled the
   store's capacity (which copy every vector to fresh memory). A second figure enrols
   100,000 templates with one ``Label`` object and one subject each, as ``wrap`` makes
   them, into a fresh store.
3. ``purge_expired`` on the store of the largest N: first with 10% of it expired, then
   (after topping it up again) with all of it expired. Vacated vector rows are zeroed.
4. Memory beyond the vectors per template: the columns' own figure
   (``MemoryBackend.nbytes_per_template()``), and a measured one: a fresh
   ``MemoryBackend(capacity=N)`` filled with the N records, with ``tracemalloc`` (bytes
   allocated) and the resident set size (RSS, after ``malloc_trim``) before and after;
   minus ``N * 512 * 4``, divided by N. The RSS figure is an upper bound: memory the
   allocators keep for reuse (Python's object arenas) counts in it. The same again
   with one subject per template (every label distinct), at up to 100,000 templates:
   each distinct subject is a Python string the store keeps.

The BLAS kernels (numpy's and faiss's own OpenBLAS) are printed (``threadpoolctl``, if
installed), and so is how fast this machine first writes to memory the process never
used: on virtual machines it can be slow enough to dominate enrolment. Where
``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) are set, numpy may run a slower kernel
than a current machine would; to measure against the kernel numpy picks by itself, run
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/stores.py`` (for that
command only; never in tests or CI). The raw and the guarded numpy search use the same
kernel, so the ratios hold either way. This is a measurement, not a test: it exits 0.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import importlib
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

import purposeguard as pg
from purposeguard.audit import MemorySink
from purposeguard.stores import GuardedStore, MemoryBackend
from purposeguard.stores._records import Record

DIM = 512
K = 10
BATCH = 10_000
BUCKETS = 4_096  # distinct subjects (and labels per kind of label and expiry)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHORT_TTL = timedelta(days=1)  # 10% of the templates
LONG_TTL = timedelta(days=365)
DISTINCT_SUBJECTS_MAX = 100_000

# Searching under each purpose lets this share of the store through. Kind 0 labels
# allow the first purpose only, kind 1 the first two, kind 2 all three.
SHARES: tuple[tuple[str, str], ...] = (
    ("100%", "face.identification.closed_set_optin"),
    ("25%", "face.identification.retrospective_search"),
    ("1%", "face.identification.realtime_remote"),
)
KIND_ALLOWED: tuple[tuple[str, ...], ...] = (
    (SHARES[0][1],),
    (SHARES[0][1], SHARES[1][1]),
    (SHARES[0][1], SHARES[1][1], SHARES[2][1]),
)
KIND_BLOCK = (2,) * 1 + (1,) * 24 + (0,) * 75  # per 100 templates: 1% / 25% / 100%
SHORT_BLOCK = (1,) + (0,) * 9  # per 10 templates: 10% expire after SHORT_TTL

TARGET_SEARCH_RATIO = 1.05
TARGET_ENROL_PER_S = 100_000
TARGET_PURGE_MS = 100.0
TARGET_BYTES = 64.0

Vector = npt.NDArray[np.float32]


# -- the corpus ----------------------------------------------------------------------------


class Corpus:
    """N vectors in one read-only matrix and, for each row, a shared label."""

    def __init__(self, n: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        vectors = np.empty((n, DIM), np.float32)
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            vectors[lo:hi] = rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        vectors.flags.writeable = False  # as FaceTemplate.wrap leaves its values
        self.vectors: Vector = vectors
        blocks = -(-n // 100)
        kinds = rng.permuted(np.tile(np.array(KIND_BLOCK, np.int64), (blocks, 1)), axis=1)
        shorts = rng.permuted(np.tile(np.array(SHORT_BLOCK, np.int64), (blocks * 10, 1)), axis=1)
        self.kinds = kinds.ravel()[:n]
        self.shorts = shorts.ravel()[:n]
        bucket = np.arange(n, dtype=np.int64) % BUCKETS
        self.label_index: list[int] = ((self.kinds * 2 + self.shorts) * BUCKETS + bucket).tolist()
        self.labels: list[pg.Label] = [
            pg.Label(
                allowed=KIND_ALLOWED[kind],
                subject=f"subject-{b:05d}",
                expires_at=T0 + (SHORT_TTL if short else LONG_TTL),
                collected_at=T0,
            )
            for kind in range(3)
            for short in (0, 1)
            for b in range(BUCKETS)
        ]
        self.long_labels = [lab for lab in self.labels if lab.expires_at == T0 + LONG_TTL]

    def templates(self, lo: int, hi: int) -> list[pg.FaceTemplate]:
        """Rows lo..hi as templates (fresh ids, shared labels, values not copied)."""
        new = pg.FaceTemplate._new
        v, labels, index = self.vectors, self.labels, self.label_index
        return [new(v[i], labels[index[i]]) for i in range(lo, hi)]

    def long_lived(self, lo: int, hi: int) -> list[pg.FaceTemplate]:
        """Rows lo..hi as templates with long-lived labels only."""
        new = pg.FaceTemplate._new
        v, labels = self.vectors, self.long_labels
        m = len(labels)
        return [new(v[i], labels[i % m]) for i in range(lo, hi)]


def unit_rows(x: Vector) -> Vector:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: Vector = np.ascontiguousarray(x / np.where(norms > 0, norms, 1), np.float32)
    return out


# -- timing ---------------------------------------------------------------------------------


@contextmanager
def no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    with no_gc():
        t0 = time.perf_counter()
        out = fn()
        t1 = time.perf_counter()
    return t1 - t0, out


def rss_bytes() -> int | None:
    """The resident set size, after giving freed heap memory back (glibc only), so
    that what the allocator merely keeps for reuse is not counted."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# -- the raw engines ---------------------------------------------------------------------------


def numpy_top(x: Vector, q: Vector, k: int = K) -> npt.NDArray[np.intp]:
    """Plain numpy: inner products, then argpartition for the top k, sorted."""
    scores = x @ q
    part = np.argpartition(-scores, k - 1)[:k]
    top: npt.NDArray[np.intp] = part[np.argsort(-scores[part])]
    return top


def load_faiss() -> Any:
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


# -- results ----------------------------------------------------------------------------------


@dataclass
class SearchRow:
    engine: str
    n: int
    share: str
    raw_ms: float
    guarded_ms: float
    pair_ratio: float  # median over the probes of guarded / raw for the same probe
    hits: int

    @property
    def ratio(self) -> float:
        return self.guarded_ms / self.raw_ms


@dataclass
class Results:
    search: list[SearchRow] = field(default_factory=list)
    enrolled: int = 0
    enrol_s: float = 0.0
    enrol_batch_rates: list[float] = field(default_factory=list)
    growth_batches: int = 0
    growth_s: float = 0.0
    make_s: float = 0.0
    wrap_us: float = 0.0
    faiss_enrol_s: float = 0.0
    purge: list[tuple[str, int, int, float]] = field(default_factory=list)
    distinct_enrolled: int = 0
    distinct_enrol_s: float = 0.0
    columns_bytes: float = 0.0
    memory: list[tuple[str, int, float, float | None]] = field(default_factory=list)
    grown_capacity: int = 0


# -- phases ------------------------------------------------------------------------------------


def measure_wrap(guard: pg.Guard, corpus: Corpus, count: int) -> float:
    """Microseconds per template of the real FaceTemplate.wrap (a COLLECT, audited)."""
    v = corpus.vectors
    with pg.using(guard):
        seconds, _ = timed(
            lambda: [
                pg.FaceTemplate.wrap(
                    v[i],
                    subject=f"subject-{i:05d}",
                    purposes=KIND_ALLOWED[0],
                    ttl=LONG_TTL,
                )
                for i in range(count)
            ]
        )
    return seconds / count * 1e6


def search_phase(
    res: Results,
    n: int,
    corpus: Corpus,
    guard: pg.Guard,
    stores: dict[str, GuardedStore],
    bare: Any,
    faiss: Any,
    queries: int,
) -> None:
    rng = np.random.default_rng(1000 + n)
    probes_v = rng.standard_normal((queries, DIM), dtype=np.float32)
    probes_v.flags.writeable = False
    probe_label = pg.Label(
        allowed=KIND_ALLOWED[2], subject="probe", expires_at=T0 + LONG_TTL, collected_at=T0
    )
    probes = [pg.FaceTemplate._new(probes_v[i], probe_label) for i in range(queries)]
    x = corpus.vectors[:n]
    raws: dict[str, Callable[[int], Any]] = {"memory": lambda i: numpy_top(x, probes_v[i])}
    if bare is not None:
        raws["faiss"] = lambda i: bare.search(probes_v[i : i + 1], K)
    for engine, store in stores.items():
        raw = raws[engine]
        for share, name in SHARES:
            with pg.using(guard), pg.purpose(name):
                for i in range(2):  # warm up
                    raw(i)
                    store.search(probes[i], K)
                raw_t: list[float] = []
                guarded_t: list[float] = []
                hits = K
                for i in range(queries):
                    guarded = functools.partial(store.search, probes[i], K)
                    plain = functools.partial(raw, i)
                    if i % 2:
                        tg, found = timed(guarded)
                        tr, _ = timed(plain)
                    else:
                        tr, _ = timed(plain)
                        tg, found = timed(guarded)
                    raw_t.append(tr)
                    guarded_t.append(tg)
                    hits = min(hits, len(found))
            row = SearchRow(
                engine,
                n,
                share,
                statistics.median(raw_t) * 1e3,
                statistics.median(guarded_t) * 1e3,
                statistics.median(g / r for g, r in zip(guarded_t, raw_t, strict=True)),
                hits,
            )
            res.search.append(row)
            print(
                f"  search {engine:<6} N={n:>9,} {share:>4} permitted: raw "
                f"{row.raw_ms:8.2f} ms  guarded {row.guarded_ms:8.2f} ms  "
                f"ratio {row.ratio:5.3f} (per probe {row.pair_ratio:5.3f})  hits {hits}",
                flush=True,
            )
    del faiss


def build_and_search(
    res: Results,
    corpus: Corpus,
    sizes: list[int],
    queries: int,
    faiss: Any,
) -> tuple[GuardedStore, pg.FrozenClock, pg.Guard, MemorySink]:
    clock = pg.FrozenClock(T0)
    sink = MemorySink()
    guard = pg.Guard(clock=clock, audit=sink)
    mem_backend = MemoryBackend()
    mem_store = GuardedStore(mem_backend, guard=guard)
    stores: dict[str, GuardedStore] = {"memory": mem_store}
    bare: Any = None
    if faiss is not None:
        from purposeguard.stores import FaissBackend

        stores["faiss"] = GuardedStore(FaissBackend(index="flat", threads=1), guard=guard)
        faiss.omp_set_num_threads(1)
        bare = faiss.IndexFlatIP(DIM)
    n = 0
    for size in sizes:
        while n < size:
            hi = min(size, n + BATCH)
            t_make, batch = timed(functools.partial(corpus.templates, n, hi))
            cap = mem_backend._cap
            t_enrol, _ = timed(functools.partial(mem_store.enrol_many, batch))
            if mem_backend._cap != cap:
                res.growth_batches += 1
                res.growth_s += t_enrol
            res.make_s += t_make
            res.enrol_s += t_enrol
            res.enrolled += hi - n
            res.enrol_batch_rates.append((hi - n) / t_enrol)
            if "faiss" in stores:
                t_f, _ = timed(functools.partial(stores["faiss"].enrol_many, batch))
                res.faiss_enrol_s += t_f
                bare.add(unit_rows(corpus.vectors[n:hi]))
            del batch
            sink.clear()  # the audit events hold every id: not what is measured here
            n = hi
        print(
            f"  built N={n:,}: enrol_many {res.enrolled / res.enrol_s:,.0f} templates/s so far",
            flush=True,
        )
        search_phase(res, n, corpus, guard, stores, bare, faiss, queries)
        sink.clear()
    backend = mem_store.backend
    assert isinstance(backend, MemoryBackend)
    res.columns_bytes = backend.nbytes_per_template()
    res.grown_capacity = backend._cap
    if "faiss" in stores:
        stores["faiss"].close()
        del stores["faiss"], bare
        gc.collect()
    return mem_store, clock, guard, sink


def purge_phase(
    res: Results,
    corpus: Corpus,
    store: GuardedStore,
    clock: pg.FrozenClock,
    guard: pg.Guard,
    sink: MemorySink,
) -> None:
    n = len(store)
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    clock.advance(SHORT_TTL + timedelta(hours=1))
    t, removed = timed(store.purge_expired)
    res.purge.append(("10% expired", n, int(removed), t * 1e3))
    print(f"  purge_expired of {n:,} with {removed:,} expired: {t * 1e3:.1f} ms", flush=True)
    # Top the store up again with long-lived templates, then let everything expire.
    lo = 0
    while len(store) < n:
        hi = lo + min(BATCH, n - len(store))
        store.enrol_many(corpus.long_lived(lo, hi))
        sink.clear()
        lo = hi
    zero_ok = not backend._X[len(store) : n].any()
    clock.advance(LONG_TTL)
    m = len(store)
    t, removed = timed(store.purge_expired)
    res.purge.append(("100% expired", m, int(removed), t * 1e3))
    zero_ok = zero_ok and not backend._X[:m].any()
    print(
        f"  purge_expired of {m:,} with {removed:,} expired: {t * 1e3:.1f} ms "
        f"(vacated rows zeroed: {'yes' if zero_ok else 'NO'})",
        flush=True,
    )
    del guard


def enrol_distinct_phase(res: Results, corpus: Corpus, n: int) -> None:
    """enrol_many with one Label object per template (as FaceTemplate.wrap makes them),
    into a fresh store, over the first n rows."""
    audit = MemorySink()
    guard = pg.Guard(clock=pg.FrozenClock(T0), audit=audit)
    store = GuardedStore(MemoryBackend(), guard=guard)
    v = corpus.vectors
    for lo in range(0, n, BATCH):
        hi = min(n, lo + BATCH)
        batch = [
            pg.FaceTemplate._new(
                v[i], pg.Label(**_label_kw(int(corpus.kinds[i]), f"person-{i:09d}"))
            )
            for i in range(lo, hi)
        ]
        t, _ = timed(functools.partial(store.enrol_many, batch))
        res.distinct_enrol_s += t
        res.distinct_enrolled += hi - lo
        audit.clear()
    store.close()
    print(
        f"  enrol_many, one label per template, N={n:,}: "
        f"{res.distinct_enrolled / res.distinct_enrol_s:,.0f} templates/s",
        flush=True,
    )


def _records(
    corpus: Corpus, lo: int, hi: int, labels: list[pg.Label] | None, permits: dict[int, Any]
) -> list[Record]:
    out = []
    v = corpus.vectors
    index = corpus.label_index
    for i in range(lo, hi):
        lab = corpus.labels[index[i]] if labels is None else labels[i - lo]
        out.append(
            Record(
                template_id=f"{i:032x}",
                vector=v[i],
                label=lab,
                permits=permits[int(corpus.kinds[i])],
            )
        )
    return out


def memory_phase(res: Results, corpus: Corpus, n: int) -> None:
    taxonomy = pg.Taxonomy.default()
    permits = {
        kind: frozenset(p.name for p in taxonomy if pg.Label(**_label_kw(kind, "x")).permits(p))
        for kind in range(3)
    }

    def fill(count: int, distinct: bool) -> tuple[float, float | None]:
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        backend = MemoryBackend(capacity=count)
        for lo in range(0, count, BATCH):
            hi = min(count, lo + BATCH)
            labels = None
            if distinct:
                labels = [
                    pg.Label(**_label_kw(int(corpus.kinds[i]), f"person-{i:09d}"))
                    for i in range(lo, hi)
                ]
            backend.add(_records(corpus, lo, hi, labels, permits))
            del labels
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        rss1 = rss_bytes()
        vectors = count * DIM * 4
        per = (traced - vectors) / count
        per_rss = None if rss0 is None or rss1 is None else (rss1 - rss0 - vectors) / count
        assert backend.count() == count
        backend.close()
        return per, per_rss

    per, per_rss = fill(n, False)
    res.memory.append((f"{BUCKETS:,} subjects, shared labels", n, per, per_rss))
    rss_text = "n/a" if per_rss is None else f"{per_rss:.1f}"
    print(
        f"  memory N={n:,} ({BUCKETS:,} subjects): {per:.1f} B/template allocated, "
        f"{rss_text} B/template resident, beyond the vectors",
        flush=True,
    )
    m = min(n, DISTINCT_SUBJECTS_MAX)
    per, per_rss = fill(m, True)
    res.memory.append(("one subject per template", m, per, per_rss))
    rss_text = "n/a" if per_rss is None else f"{per_rss:.1f}"
    print(
        f"  memory N={m:,} (one subject each): {per:.1f} B/template allocated, "
        f"{rss_text} B/template resident, beyond the vectors",
        flush=True,
    )


def _label_kw(kind: int, subject: str) -> dict[str, Any]:
    return {
        "allowed": KIND_ALLOWED[kind],
        "subject": subject,
        "expires_at": T0 + LONG_TTL,
        "collected_at": T0,
    }


# -- report -------------------------------------------------------------------------------------


def environment() -> str:
    parts = [
        f"python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"{os.cpu_count()} cores",
    ]
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                parts.append(
                    f"BLAS {info.get('internal_api')} {info.get('version')} "
                    f"kernel {info.get('architecture')} threads {info.get('num_threads')}"
                )
    except ImportError:
        parts.append("BLAS kernel: unknown (pip install threadpoolctl)")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            parts.append(f"{var}={os.environ[var]}")
    faiss = load_faiss()
    if faiss is not None:
        parts.append(f"faiss {faiss.__version__}")
    # What the first write to fresh memory costs here (2 KB a template: every stored
    # vector is written once to memory the process never used).
    fresh = np.zeros(256 << 18, np.float32)  # 256 MiB
    seconds, _ = timed(functools.partial(fresh.fill, 1.0))
    del fresh
    parts.append(f"first write to fresh memory {256 / 1024 / seconds:.1f} GiB/s")
    if hasattr(os, "getloadavg"):
        parts.append("load " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return ", ".join(parts)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def report(res: Results, sizes: list[int], wrap_sample: int) -> None:
    print()
    print(
        "search, k=10, median over the probes (ms); ratio = median guarded / median raw;"
        " per probe = median of guarded / raw for the same probe"
    )
    print(
        f"{'engine':<8} {'N':>10} {'permitted':>9} {'raw':>9} {'guarded':>9} "
        f"{'ratio':>6} {'per probe':>9} {'hits':>4}"
    )
    for r in res.search:
        raw_name = "numpy" if r.engine == "memory" else "faiss"
        print(
            f"{r.engine:<8} {r.n:>10,} {r.share:>9} {r.raw_ms:>9.2f} {r.guarded_ms:>9.2f} "
            f"{r.ratio:>6.3f} {r.pair_ratio:>9.3f} {r.hits:>4}   (raw: {raw_name})"
        )
    print()
    rate = res.enrolled / res.enrol_s
    rates = res.enrol_batch_rates
    steady = res.enrolled - res.growth_batches * BATCH
    print(
        f"enrol_many into MemoryBackend: {res.enrolled:,} templates in {res.enrol_s:.2f} s "
        f"= {rate:,.0f} templates/s (batches of {BATCH:,}: median "
        f"{statistics.median(rates):,.0f}/s, slowest {min(rates):,.0f}/s)"
    )
    if res.growth_batches and steady > 0:
        print(
            f"  of which {res.growth_s:.2f} s in the {res.growth_batches} batches that doubled "
            f"the capacity (the vectors copied to fresh memory); the other batches: "
            f"{steady / (res.enrol_s - res.growth_s):,.0f} templates/s"
        )
    print(
        f"  setup, untimed: FaceTemplate._new with shared labels "
        f"{res.make_s / res.enrolled * 1e6:.2f} us/template ({res.make_s:.2f} s in all); "
        f"FaceTemplate.wrap costs {res.wrap_us:.1f} us/template "
        f"(measured on {wrap_sample:,}; it would take "
        f"{res.wrap_us * res.enrolled / 1e6:.0f} s for these)"
    )
    if res.distinct_enrolled:
        print(
            f"  with one Label object per template and one subject each (as wrap makes "
            f"them), into a fresh store, {res.distinct_enrolled:,} templates: "
            f"{res.distinct_enrolled / res.distinct_enrol_s:,.0f} templates/s"
        )
    if res.faiss_enrol_s:
        print(
            f"  (enrol_many into FaissBackend flat: "
            f"{res.enrolled / res.faiss_enrol_s:,.0f} templates/s)"
        )
    print()
    for what, n, removed, ms in res.purge:
        print(f"purge_expired, store of {n:,}, {what}: removed {removed:,} in {ms:.1f} ms")
    print()
    print(
        f"memory beyond the vectors: columns {res.columns_bytes:.0f} B/template "
        f"(MemoryBackend.nbytes_per_template())"
    )
    for what, n, per, per_rss in res.memory:
        rss_text = "n/a" if per_rss is None else f"{per_rss:.1f}"
        print(
            f"  measured, MemoryBackend(capacity={n:,}), {what}: {per:.1f} B/template "
            f"allocated (tracemalloc), {rss_text} B/template resident (RSS)"
        )
    if res.enrolled:
        slack = res.grown_capacity - res.enrolled
        print(
            f"  a store grown from the default capacity holds {res.grown_capacity:,} rows "
            f"for {res.enrolled:,}: {slack * (DIM * 4 + res.columns_bytes) / res.enrolled:.0f}"
            f" B/template allocated but never touched (zero pages: not resident)"
        )
    print()
    big = max(sizes)
    at = f"N={big:,}" + ("" if big >= 1_000_000 else " (the target is stated at 1,000,000)")
    print("targets:")
    for engine in ("memory", "faiss"):
        rows = [r for r in res.search if r.engine == engine and r.n == big]
        if not rows:
            continue
        worst = max(rows, key=lambda r: r.ratio)
        print(
            f"  guarded search <= {TARGET_SEARCH_RATIO}x raw, {engine}, {at}: worst "
            f"{worst.ratio:.3f}x ({worst.share} permitted): "
            f"{verdict(all(r.ratio <= TARGET_SEARCH_RATIO for r in rows))}"
        )
    rate = res.enrolled / res.enrol_s
    print(
        f"  enrol_many >= {TARGET_ENROL_PER_S:,}/s: {rate:,.0f}/s: "
        f"{verdict(rate >= TARGET_ENROL_PER_S)}"
    )
    if res.distinct_enrolled:
        rate = res.distinct_enrolled / res.distinct_enrol_s
        print(
            f"    one label per template ({res.distinct_enrolled:,}): {rate:,.0f}/s: "
            f"{verdict(rate >= TARGET_ENROL_PER_S)}"
        )
    for what, n, _removed, ms in res.purge:
        note = "" if n >= 1_000_000 else " (the target is stated at 1,000,000)"
        print(
            f"  purge_expired of {n:,} < {TARGET_PURGE_MS:.0f} ms, {what}{note}: "
            f"{ms:.1f} ms: {verdict(ms < TARGET_PURGE_MS)}"
        )
    print(
        f"  memory beyond vectors < {TARGET_BYTES:.0f} B/template: columns "
        f"{res.columns_bytes:.0f} B: {verdict(res.columns_bytes < TARGET_BYTES)}"
    )
    for what, n, per, per_rss in res.memory:
        figs = [per] + ([] if per_rss is None else [per_rss])
        print(
            f"    measured, {what} (N={n:,}): {per:.1f} B allocated"
            + ("" if per_rss is None else f", {per_rss:.1f} B resident")
            + f": {verdict(max(figs) < TARGET_BYTES)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N = 100,000 only")
    parser.add_argument(
        "--sizes", default=None, help="comma-separated store sizes (default 100000,1000000)"
    )
    parser.add_argument("--queries", type=int, default=None, help="probes per figure (>= 15)")
    parser.add_argument("--no-faiss", action="store_true", help="skip the faiss comparison")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    else:
        sizes = [100_000] if args.quick else [100_000, 1_000_000]
    if not sizes or min(sizes) < 1_000:
        parser.error("sizes must be at least 1000")
    queries = args.queries if args.queries is not None else (15 if args.quick else 21)
    if queries < 15:
        parser.error("--queries must be at least 15")
    faiss = None if args.no_faiss else load_faiss()
    print(f"purposeguard store benchmark: {environment()}")
    print(
        f"512-d float32, k={K}; sizes {', '.join(f'{s:,}' for s in sizes)}; "
        f"{queries} probes per figure; faiss {'on' if faiss is not None else 'off'}"
    )
    print(
        f"setup: templates built with FaceTemplate._new over shared Label objects "
        f"({BUCKETS:,} subjects x 3 kinds x 2 expiries), not with FaceTemplate.wrap",
        flush=True,
    )
    t_start = time.perf_counter()
    res = Results()
    big = max(sizes)
    corpus = Corpus(big)
    wrap_sample = 2_000
    res.wrap_us = measure_wrap(
        pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink()), corpus, wrap_sample
    )
    memory_phase(res, corpus, big)  # first, while the process's RSS is steady
    enrol_distinct_phase(res, corpus, min(big, DISTINCT_SUBJECTS_MAX))
    store, clock, guard, sink = build_and_search(res, corpus, sizes, queries, faiss)
    purge_phase(res, corpus, store, clock, guard, sink)
    store.close()
    report(res, sizes, wrap_sample)
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
