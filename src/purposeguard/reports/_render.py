"""Rendering a [`Report`][purposeguard.reports.Report] as Markdown and as one self-contained HTML
page.

The HTML page has inline CSS and inline SVG charts drawn here; no script, no font,
no image or style sheet from elsewhere. Every text from the report is escaped.
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from purposeguard.policy import RULES

if TYPE_CHECKING:
    from ._build import ConsentSummary, Report

__all__ = ["html", "markdown"]

TITLE: Final = "Record of processing of face data"
_PALETTE: Final = (
    "#3b6ea5", "#c8553d", "#588b8b", "#f2a541", "#7b5ea7", "#5d8a3a", "#b04a7a",
    "#8c6d46", "#4d7ea8", "#a63d40",
)  # fmt: skip


# -- shared wording -------------------------------------------------------------------


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M UTC")


def _day(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d")


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "NO")


def _num(n: int | float | None) -> str:
    if n is None:
        return "-"
    if isinstance(n, float):
        return f"{n:,.1f}"
    return f"{n:,}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _consent_line(c: ConsentSummary) -> str:
    return (
        f"{_count(c.total, 'consent record')}, {c.withdrawn:,} withdrawn; "
        f"{c.with_guardian:,} given by a guardian; {c.with_transfer:,} consent to a "
        f"transfer; {c.with_recipients:,} name recipients ({c.recipients:,} distinct); "
        f"{c.with_term:,} have a term."
    )


def _tamper_lines(r: Report) -> list[str]:
    a = r.audit
    assert a is not None
    where = "unknown" if a.first_bad_seq is None else str(a.first_bad_seq)
    return [
        "THE AUDIT LOG FAILED VERIFICATION: it was altered, truncated or is not the log "
        "of this key.",
        f"Verifier: {a.reason} (first bad entry: {where}).",
        f"Figures from the log below cover only the {a.entries:,} entries verified before "
        "the fault and cannot stand as evidence.",
    ]


def _summary_rows(r: Report) -> list[tuple[str, str]]:
    rows = [
        ("Store", f"{r.store} ({r.backend})"),
        ("Templates stored", _num(r.templates)),
        ("Distinct subjects", _num(r.subjects)),
        ("Policy", r.policy or "none given"),
        ("Presets", ", ".join(r.presets) or "-"),
        ("Rules in force", str(len(r.rules))),
        ("Undeclared duties", str(len(r.duties))),
    ]
    if r.consents is not None:
        rows.append(
            ("Consent records", f"{r.consents.total:,} ({r.consents.withdrawn:,} withdrawn)")
        )
    a = r.audit
    if a is None:
        rows.append(("Audit log", "none given"))
    else:
        rows.append(("Audit log", "verified" if a.verified else "FAILED VERIFICATION"))
        rows.append(
            ("Events (verified)", f"{a.events:,} from {_when(a.first_at)} to {_when(a.last_at)}")
        )
        denied = a.outcomes.get("denied", 0) + a.outcomes.get("would_deny", 0)
        rows.append(("Denials", f"{denied:,} ({a.outcomes.get('would_deny', 0):,} in audit mode)"))
        removed = sum(n for _, n in a.erasures.values())
        rows.append(("Templates erased", _num(removed)))
    return rows


def _denials(r: Report) -> int:
    a = r.audit
    assert a is not None
    return a.outcomes.get("denied", 0) + a.outcomes.get("would_deny", 0)


def _rule_rows(r: Report) -> list[tuple[str, str, str]]:
    a = r.audit
    assert a is not None
    out = []
    for rid, n in a.denials_by_rule.items():
        rule = RULES.get(rid)
        what = rule.summary if rule is not None else _LOCAL.get(rid, "")
        out.append((rid, _num(n), what))
    return out


_LOCAL: Final = {
    "LOCAL-BAN": "A purpose the deployment bans.",
    "LOCAL-FORM": "A consent form the deployment asks for.",
    "LOCAL-RETENTION": "A retention cap of the deployment.",
    "(label or scope)": "The label, the declared purpose, an expiry or a grant refused it "
    "(no rule of the policy named).",
}


def _filing_text(r: Report) -> str:
    f = r.filing
    if not f.in_force:
        state = "FR-07 is not in force in this policy."
    elif f.filing is not None:
        state = f"Filing declared: {f.filing}."
    elif f.subjects >= f.threshold:
        state = "FILING DUE: the threshold is reached and no filing is declared."
    else:
        state = "Below the threshold; no filing due yet."
    noun = "subject" if f.subjects == 1 else "subjects"
    return f"{f.subjects:,} distinct {noun} stored; the threshold is {f.threshold:,}. {state}"


def _skeleton(r: Report) -> list[tuple[str, str, str]]:
    # (question, what the data shows, what the controller must add)
    d = r.declarations
    sensitive = [e.purpose for e in r.purposes if e.sensitive]
    undeclared = [e.purpose for e in r.purposes if e.declared is False]
    a = r.audit
    logged = (
        "no audit log given"
        if a is None
        else ("audit log verified" if a.verified else "audit log FAILED verification")
    )
    return [
        (
            "1. Are the purpose and the method of processing lawful, legitimate and "
            "necessary? (PIPL Art. 56(1); GDPR Art. 35(7)(a)-(b))",
            f"{_count(len(r.purposes), 'purpose')} ({len(sensitive)} sensitive); purposes "
            f"stored but not declared: {', '.join(undeclared) or 'none'}; necessity: "
            f"{d.get('necessity') or 'NOT DECLARED'}.",
            "Describe the processing and why face recognition is necessary; name the less "
            "intrusive means considered.",
        ),
        (
            "2. What is the impact on the individuals' rights and the security risk? "
            "(PIPL Art. 56(2); GDPR Art. 35(7)(c))",
            f"subjects: {r.subjects:,}; templates: {r.templates:,}; denials logged: "
            f"{'-' if a is None else _denials(r)}; consents withdrawn: "
            f"{'-' if r.consents is None else r.consents.withdrawn}.",
            "Assess the risks of misidentification, function creep, breach and "
            "discrimination for these subjects.",
        ),
        (
            "3. Are the protective measures lawful, effective and proportionate to the "
            "risk? (PIPL Art. 56(3); GDPR Art. 35(7)(d))",
            f"purpose-bound labels enforced by purposeguard; storage: "
            f"{d.get('storage') or 'not declared'}; {logged}; alternatives: "
            f"{d.get('alternatives') or 'none declared'}; impact assessment reference: "
            f"{d.get('impact assessment') or 'NOT DECLARED'}.",
            "Add encryption, access control, staff training and incident response; keep "
            "this assessment and the processing record for at least three years "
            "(PIPL Art. 56).",
        ),
    ]


# -- Markdown -------------------------------------------------------------------------


def _md_cell(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = [
        "| " + " | ".join(_md_cell(h) for h in head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


def _by_day_rows(days: Mapping[str, Mapping[str, int]], rules: list[str]) -> list[list[object]]:
    return [[d, *[c.get(rid, 0) for rid in rules], sum(c.values())] for d, c in days.items()]


def markdown(r: Report) -> str:
    """*r* as Markdown."""
    out: list[str] = [f"# {TITLE}", ""]
    if r.tampered:
        lines = _tamper_lines(r)
        out += ["> **WARNING**", ">", f"> **{lines[0]}**"]
        for line in lines[1:]:
            out += [">", f"> {line}"]
        out.append("")
    out += [
        f"Generated {_when(r.generated_at)} by purposeguard. GDPR Art. 30 record of "
        "processing activities, with the skeleton of the PIPL Art. 55-56 personal "
        "information protection impact assessment. Counts only: no template values, no "
        "subject or consent identifiers.",
        "",
        "## Summary",
        "",
        *_md_table(("", ""), _summary_rows(r)),
        "",
        "## Purposes of processing",
        "",
        "GDPR Art. 30(1)(b); PIPL Art. 17, 56(1).",
        "",
    ]
    if r.purposes:
        out += _md_table(
            ("Purpose", "Sensitive", "Declared", "Templates", "Subjects", "Consent form",
             "Accesses granted", "Accesses denied", "Description"),
            (
                (e.purpose, _yes(e.sensitive), _yes(e.declared), _num(e.templates),
                 _num(e.subjects), e.consent_form or "-",
                 "-" if r.audit is None else _num(e.granted),
                 "-" if r.audit is None else _num(e.denied), e.description or "-")
                for e in r.purposes
            ),
        )  # fmt: skip
    else:
        out.append("No purposes: the store is empty and the policy declares none.")
    out += [
        "",
        "## Legal bases and consents",
        "",
        "GDPR Art. 6, 7, 9(2); PIPL Art. 13-14, 29.",
        "",
    ]
    c = r.consents
    if c is None:
        out.append("No consent registry given.")
    else:
        out += [
            _consent_line(c),
            "",
            "### Consents by form",
            "",
            *_md_table(("Form", "Records"), ((k, _num(v)) for k, v in c.by_form.items())),
            "",
            "### Legal bases",
            "",
            *_md_table(
                ("Basis", "Consent records"), ((k, _num(v)) for k, v in c.by_basis.items())
            ),
            "",
            "### Templates by the basis of their record",
            "",
            *(
                _md_table(
                    ("Basis", "Templates"),
                    ((k, _num(v)) for k, v in c.templates_by_basis.items()),
                )
                if c.templates_by_basis
                else ["No templates stored."]
            ),
        ]
    out += ["", "## Retention", "", "GDPR Art. 5(1)(e), 30(1)(f); PIPL Art. 19; BIPA 15(a).", ""]
    if r.purposes:
        out += _md_table(
            ("Purpose", "Longest kept (days)", "Latest expiry", "Expired now", "Beyond the cap",
             "Caps in force"),
            (
                (e.purpose, _num(e.longest_days), _day(e.latest_expiry), _num(e.expired),
                 _num(e.beyond_cap), "; ".join(e.retention_rules) or "-")
                for e in r.purposes
            ),
        )  # fmt: skip
        out.append("")
    out += [
        "## Store, subjects and filing",
        "",
        f"- Filing (FR-07): {_filing_text(r)}",
        *[f"- **Alert:** {a}" for a in r.filing.alerts],
        "",
        "## Denials by rule",
        "",
    ]
    a = r.audit
    if a is None:
        out.append("No audit log given.")
    elif not a.denials_by_rule:
        out.append("No denials in the verified log.")
    else:
        out += _md_table(("Rule", "Denials", "What it requires"), _rule_rows(r))
        rules = list(a.denials_by_rule)
        out += ["", "### Per day (UTC)", ""]
        out += _md_table(("Day", *rules, "Total"), _by_day_rows(a.denials_by_day, rules))
    out += ["", "## Erasures", "", "GDPR Art. 17; PIPL Art. 47; BIPA 15(a).", ""]
    if a is None:
        out.append("No audit log given.")
    else:
        out += _md_table(
            ("Kind", "Events", "Templates removed"),
            ((k, _num(n), _num(m)) for k, (n, m) in a.erasures.items()),
        )
        out += ["", f"Distinct subjects erased on request: {a.subjects_erased:,}."]
    out += ["", "## Undeclared duties", "", "As `purposeguard policy lint` reports them.", ""]
    if r.policy is None:
        out.append("No policy given.")
    elif r.duties:
        out += [f"- {d}" for d in r.duties]
    else:
        out.append("None: every duty in force is declared.")
    if r.waivers:
        out += ["", "Waived rules:", ""] + [f"- {k}: {v}" for k, v in r.waivers.items()]
    out += ["", "## Impact assessment skeleton (PIPL Art. 55-56)", ""]
    for q, shown, todo in _skeleton(r):
        out += [f"**{q}**", "", f"- Data: {shown}", f"- To complete: {todo}", ""]
    if r.rules:
        out += ["## Rules in force", "", ", ".join(r.rules), ""]
    if r.notes:
        out += ["## Limits of this report", ""] + [f"- {n}" for n in r.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


# -- HTML -----------------------------------------------------------------------------


def _e(value: object) -> str:
    return _html.escape(str(value), quote=True)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], num_from: int = 1) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_e(c)}</td>' if i > 0 and i >= num_from and _numeric(c)
            else f'<td class="w">{_e(c)}</td>' if len(str(c)) > 40
            else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )  # fmt: skip
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(c: object) -> bool:
    s = str(c).replace(",", "").replace(".", "")
    return s.isdigit() or s == "-"


def _word(value: str) -> str:
    return ' class="word"' if not value.replace(",", "").isdigit() else ""


def _hbars(items: Sequence[tuple[str, int]], colour: str = _PALETTE[0]) -> str:
    """A horizontal bar chart: one labelled bar per item."""
    if not items:
        return ""
    label_w, bar_w, row_h, pad = 190, 420, 22, 6
    top = max(v for _, v in items) or 1
    h = len(items) * row_h + pad * 2
    w = label_w + bar_w + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" class="chart">'
    ]
    for i, (name, v) in enumerate(items):
        y = pad + i * row_h
        length = max(1.0, bar_w * v / top) if v else 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 7}" '
            f'fill="{colour}"><title>{_e(name)}: {v:,}</title></rect>'
            f'<text x="{label_w + length + 6:.1f}" y="{y + 15}">{v:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _every_day(days: Mapping[str, Mapping[str, int]]) -> Mapping[str, Mapping[str, int]]:
    # Days without denials as empty bars, so the axis is time (up to a year of days).
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    span = (last - first).days
    if span > 366:
        return days
    empty: Mapping[str, int] = {}
    out = {}
    for i in range(span + 1):
        d = (first + timedelta(days=i)).isoformat()
        out[d] = days.get(d, empty)
    return out


def _day_bars(days: Mapping[str, Mapping[str, int]], rules: list[str]) -> str:
    """Stacked vertical bars: denials per day, coloured by rule, with a legend."""
    if not days:
        return ""
    days = _every_day(days)
    colour = {rid: _PALETTE[i % len(_PALETTE)] for i, rid in enumerate(rules)}
    n = len(days)
    left, plot_h, top_pad, bottom = 44, 180, 12, 46
    plot_w = min(760, max(300, 56 * n))
    step = plot_w / n
    bar = max(2.0, min(36.0, step * 0.7))
    peak = max(sum(c.values()) for c in days.values()) or 1
    legend_rows = (len(rules) + 3) // 4
    h = top_pad + plot_h + bottom + legend_rows * 18
    w = max(left + plot_w + 12, left + 4 * 130)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" class="chart">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end">{peak:,}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end">0</text>',
    ]
    every = max(1, round(n / 8))
    for i, (day, counts) in enumerate(days.items()):
        x = left + i * step + (step - bar) / 2
        y = float(top_pad + plot_h)
        for rid in rules:
            v = counts.get(rid, 0)
            if not v:
                continue
            hgt = plot_h * v / peak
            y -= hgt
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{hgt:.1f}" '
                f'fill="{colour[rid]}"><title>{_e(day)} {_e(rid)}: {v:,}</title></rect>'
            )
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top_pad + plot_h + 16}" '
                f'text-anchor="middle">{_e(day[5:])}</text>'
            )
    ly = top_pad + plot_h + 34
    for i, rid in enumerate(rules):
        lx = left + (i % 4) * 130
        yy = ly + (i // 4) * 18
        parts.append(
            f'<rect x="{lx}" y="{yy - 10}" width="11" height="11" fill="{colour[rid]}"/>'
            f'<text x="{lx + 16}" y="{yy}">{_e(rid)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_CSS: Final = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1d2330; background: #f6f7f9; margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 36px 48px; background: #fff;
  min-height: 100vh; box-shadow: 0 0 0 1px #e3e6eb; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 6px; padding-bottom: 4px; border-bottom: 2px solid #e3e6eb; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.meta, p.law { color: #5a6372; margin: 2px 0 10px; font-size: 13.5px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid #dde1e7; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td { white-space: nowrap; }
td.w { white-space: normal; min-width: 260px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 180px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr));
  gap: 10px; margin: 16px 0 4px; }
.card { border: 1px solid #dde1e7; border-radius: 8px; padding: 10px 12px; }
.card b { display: block; font-size: 24px; font-variant-numeric: tabular-nums; }
.card b.word { font-size: 19px; line-height: 29px; }
.card span { color: #5a6372; font-size: 12.5px; }
.card.bad { border-color: #c0392b; background: #fdf0ee; }
.card.ok { border-color: #2e8b57; background: #eff8f2; }
.alert { border: 3px solid #c0392b; background: #fdecea; color: #7b1d13; padding: 14px 18px;
  border-radius: 8px; margin: 16px 0; }
.alert strong { font-size: 18px; display: block; margin-bottom: 4px; }
.warn { border-left: 4px solid #e0a100; background: #fff8e1; padding: 8px 12px; margin: 8px 0; }
ul.duties li { margin: 4px 0; }
svg.chart { display: block; margin: 8px 0 12px; max-width: 100%; height: auto; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #333; }
.skeleton dt { font-weight: 600; margin-top: 12px; }
.skeleton dd { margin: 4px 0 0 18px; }
.muted { color: #5a6372; }
code { font-size: 12.5px; }
.rid { white-space: nowrap; }
footer { margin-top: 36px; color: #5a6372; font-size: 12.5px; }
"""


def html(r: Report) -> str:
    """*r* as one self-contained HTML page."""
    a = r.audit
    b: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(TITLE)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(TITLE)}</h1>",
        f'<p class="meta">Generated {_e(_when(r.generated_at))} by purposeguard &middot; '
        f"store <code>{_e(r.store)}</code> &middot; policy {_e(r.policy or 'none given')}</p>",
        '<p class="law">GDPR Art. 30 record of processing activities, with the skeleton of '
        "the PIPL Art. 55-56 personal information protection impact assessment. Counts "
        "only: no template values, no subject or consent identifiers.</p>",
    ]
    if r.tampered:
        lines = _tamper_lines(r)
        b.append(
            f'<div class="alert" role="alert"><strong>&#9888; {_e(lines[0])}</strong>'
            + "".join(f"<div>{_e(x)}</div>" for x in lines[1:])
            + "</div>"
        )
    denied = None if a is None else _denials(r)
    part = " (verified part)" if r.tampered else ""
    removed = None if a is None else sum(n for _, n in a.erasures.values())
    cards = [
        ("Templates", _num(r.templates), ""),
        ("Subjects", _num(r.subjects), "bad" if r.filing.alerts else ""),
        ("Purposes", _num(len(r.purposes)), ""),
        ("Undeclared duties", _num(len(r.duties)) if r.policy else "-", "bad" if r.duties else ""),
        ("Denials" + part, _num(denied), ""),
        ("Templates erased" + part, _num(removed), ""),
        (
            "Audit log",
            "-" if a is None else ("verified" if a.verified else "TAMPERED"),
            "" if a is None else ("ok" if a.verified else "bad"),
        ),
    ]
    b.append(
        '<div class="cards">'
        + "".join(
            f'<div class="card {cls}"><b{_word(v)}>{_e(v)}</b><span>{_e(k)}</span></div>'
            for k, v, cls in cards
        )
        + "</div>"
    )
    b.append("<h2>Summary</h2>")
    b.append(
        '<table class="kv"><tbody>'
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _summary_rows(r))
        + "</tbody></table>"
    )

    b.append("<h2>Purposes of processing</h2>")
    b.append('<p class="law">GDPR Art. 30(1)(b); PIPL Art. 17, 56(1).</p>')
    if r.purposes:
        b.append(
            _table(
                ("Purpose", "Sensitive", "Declared", "Templates", "Subjects", "Consent form",
                 "Accesses granted", "Accesses denied"),
                [
                    (e.purpose, _yes(e.sensitive), _yes(e.declared), _num(e.templates),
                     _num(e.subjects), e.consent_form or "-",
                     "-" if a is None else _num(e.granted), "-" if a is None else _num(e.denied))
                    for e in r.purposes
                ],
                num_from=3,
            )
        )  # fmt: skip
        stored = [(e.purpose, e.templates) for e in r.purposes if e.templates]
        if stored:
            b.append("<h3>Templates per purpose</h3>")
            b.append(_hbars(stored, _PALETTE[0]))
    else:
        b.append(
            '<p class="muted">No purposes: the store is empty and the policy declares none.</p>'
        )

    b.append("<h2>Legal bases and consents</h2>")
    b.append('<p class="law">GDPR Art. 6, 7, 9(2); PIPL Art. 13-14, 29.</p>')
    c = r.consents
    if c is None:
        b.append('<p class="muted">No consent registry given.</p>')
    else:
        b.append(f"<p>{_e(_consent_line(c))}</p>")
        b.append('<div style="display:flex;gap:28px;flex-wrap:wrap">')
        for title, head, items in (
            ("Consents by form", ("Form", "Records"), c.by_form),
            ("Legal bases", ("Basis", "Consent records"), c.by_basis),
            ("Templates by basis", ("Basis of their record", "Templates"), c.templates_by_basis),
        ):
            rows = [(k, _num(v)) for k, v in items.items()]
            shown = _table(head, rows) if rows else '<p class="muted">None stored.</p>'
            b.append(f"<div><h3>{_e(title)}</h3>{shown}</div>")
        b.append("</div>")

    b.append("<h2>Retention</h2>")
    b.append('<p class="law">GDPR Art. 5(1)(e), 30(1)(f); PIPL Art. 19; BIPA 15(a).</p>')
    if r.purposes:
        b.append(
            _table(
                ("Purpose", "Longest kept (days)", "Latest expiry", "Expired now",
                 "Beyond the cap", "Caps in force"),
                [
                    (e.purpose, _num(e.longest_days), _day(e.latest_expiry), _num(e.expired),
                     _num(e.beyond_cap), "; ".join(e.retention_rules) or "-")
                    for e in r.purposes
                ],
            )
        )  # fmt: skip
        if any(e.beyond_cap for e in r.purposes):
            b.append(
                '<p class="warn">Some templates are kept beyond what the policy accepts '
                "today: shorten their expiry or erase them.</p>"
            )

    b.append("<h2>Store, subjects and filing</h2>")
    b.append(f"<p>Filing (FR-07): {_e(_filing_text(r))}</p>")
    b += [f'<p class="warn"><b>Alert:</b> {_e(x)}</p>' for x in r.filing.alerts]

    b.append("<h2>Denials by rule</h2>")
    if a is None:
        b.append('<p class="muted">No audit log given.</p>')
    elif not a.denials_by_rule:
        b.append('<p class="muted">No denials in the verified log.</p>')
    else:
        b.append(_hbars(list(a.denials_by_rule.items()), _PALETTE[1]))
        b.append(_table(("Rule", "Denials", "What it requires"), _rule_rows(r)))
        rules = list(a.denials_by_rule)
        b.append("<h3>Denials per day (UTC)</h3>")
        b.append(_day_bars(a.denials_by_day, rules))
        b.append(_table(("Day", *rules, "Total"), _by_day_rows(a.denials_by_day, rules)))

    b.append("<h2>Erasures</h2>")
    b.append('<p class="law">GDPR Art. 17; PIPL Art. 47; BIPA 15(a).</p>')
    if a is None:
        b.append('<p class="muted">No audit log given.</p>')
    else:
        b.append(
            _table(
                ("Kind", "Events", "Templates removed"),
                [(k, _num(n), _num(m)) for k, (n, m) in a.erasures.items()],
            )
        )
        b.append(f"<p>Distinct subjects erased on request: {a.subjects_erased:,}.</p>")

    b.append("<h2>Undeclared duties</h2>")
    b.append('<p class="law">As <code>purposeguard policy lint</code> reports them.</p>')
    if r.policy is None:
        b.append('<p class="muted">No policy given.</p>')
    elif r.duties:
        b.append('<ul class="duties">' + "".join(f"<li>{_e(d)}</li>" for d in r.duties) + "</ul>")
    else:
        b.append("<p>None: every duty in force is declared.</p>")
    if r.waivers:
        b.append(
            "<h3>Waived rules</h3><ul>"
            + "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in r.waivers.items())
            + "</ul>"
        )
    if r.declarations:
        b.append("<h3>Declarations</h3>")
        b.append(
            '<table class="kv"><tbody>'
            + "".join(
                f"<tr><th>{_e(k)}</th><td>{_e(v if v is not None else 'not declared')}</td></tr>"
                for k, v in r.declarations.items()
            )
            + "</tbody></table>"
        )

    b.append("<h2>Impact assessment skeleton (PIPL Art. 55-56)</h2>")
    b.append('<dl class="skeleton">')
    for q, shown, todo in _skeleton(r):
        b.append(
            f"<dt>{_e(q)}</dt><dd><b>Data:</b> {_e(shown)}</dd>"
            f"<dd><b>To complete:</b> {_e(todo)}</dd>"
        )
    b.append("</dl>")
    if r.rules:
        b.append("<h2>Rules in force</h2>")
        b.append("<p>" + ", ".join(f'<span class="rid">{_e(x)}</span>' for x in r.rules) + "</p>")
    if r.notes:
        b.append("<h2>Limits of this report</h2>")
        b.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in r.notes) + "</ul>")
    if a is not None:
        b.append(
            f"<footer>Audit log <code>{_e(a.path)}</code>, log id {_e(a.log_id or '-')}: "
            f"{_e(a.reason)}</footer>"
        )
    b.append("</main></body></html>")
    return "\n".join(b) + "\n"
