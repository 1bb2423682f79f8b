"""The plan's report: plan.html (self-contained, inline SVG charts drawn as the drill
report draws them, `resilience.drills.report`) with the procurement summary in English
and Turkish; plan.json is the answer itself (`commands.plan`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resilience.drills.report import _Chart, _esc, _page, _table

__all__ = ["TIER_NAMES", "donors_text", "plan_html", "procurement_rows", "write_plan_report"]

TIER_NAMES = {
    "en": {"life_safety": "life-safety", "critical": "critical", "essential": "essential"},
    "tr": {"life_safety": "yaşam güvenliği", "critical": "kritik", "essential": "temel"},
}
HEADERS = {
    "en": (
        "bidirectional chargers",
        "of which grid-forming",
        "V2L outlets",
        "PV [kWp]",
        "cost",
        "fast model",
        "real drills",
    ),
    "tr": (
        "çift yönlü şarj ünitesi",
        "şebeke oluşturabilen",
        "V2L prizi",
        "GES [kWp]",
        "maliyet",
        "hızlı model",
        "gerçek tatbikat",
    ),
}
TITLES = {
    "en": ("Procurement summary", "survival at the targets"),
    "tr": ("Tedarik özeti", "hedeflerde dayanım"),
}
HOUR = {"en": "h", "tr": "sa"}
GREY = "#bbbbbb"
FRONT = ["#c0392b", "#1f77b4", "#2ca02c", "#9467bd", "#e67e22", "#17becf"]


def _target_text(target: dict[str, Any], lang: str) -> str:
    tier = TIER_NAMES[lang][target["tier"]]
    if lang == "tr":
        return f"{tier} {target['hours']} sa, başlangıçların %{target['share_pct']:g}'i"
    return f"{tier} {target['hours']} h after {target['share_pct']:g} % of outage starts"


def procurement_rows(answer: dict[str, Any], lang: str) -> list[tuple[Any, ...]]:
    """One row per frontier combination: what to buy, its cost, its survival at the targets
    (the fast model over every start; the drills over their sample)."""
    by_key = {r["key"]: r for r in answer["results"]}
    rows = []
    for key in answer["frontier"]:
        r = by_key[key]
        c = r["combination"]
        fast = "; ".join(
            f"{TIER_NAMES[lang][t['tier']]} {t['hours']} {HOUR[lang]}: {t['achieved_pct']:.1f} %"
            for t in r["targets"]
        )
        check = r.get("check")
        drills = (
            "; ".join(
                f"{TIER_NAMES[lang][t['tier']]} {t['hours']} {HOUR[lang]}: {t['drill_pct']:.1f} %"
                f" ({t['starts']})"
                for t in check["targets"]
                if t["drill_pct"] is not None
            )
            if check
            else ""
        ) or "-"
        cost = "-" if r["cost"] is None else f"{r['cost']:,.0f} {answer.get('currency') or ''}"
        rows.append(
            (
                c["chargers"],
                c["grid_forming"],
                c["v2l_outlets"],
                f"{c['pv_kwp']:g}",
                cost,
                fast,
                drills,
            )
        )
    return rows


def _curves(answer: dict[str, Any]) -> str:
    target = answer["targets"][0]
    tier = target["tier"]
    hours = max(len(r.get("survival_pct", {}).get(tier, [])) for r in answer["results"]) or 1
    chart = _Chart(hours * 3600.0, 0, 100, "share of outage starts carried [%]", (3600.0, "h"), 340)
    front = set(answer["frontier"])
    for r in answer["results"]:
        if r["key"] in front or not r.get("valid"):
            continue
        shares = r["survival_pct"][tier]
        chart.polyline(
            [(0.0, 100.0)] + [((h + 1) * 3600.0, s) for h, s in enumerate(shares)], GREY, width=0.8
        )
    chart.add_legend("other combinations", GREY)
    by_key = {r["key"]: r for r in answer["results"]}
    for i, key in enumerate(answer["frontier"]):
        r = by_key[key]
        colour = FRONT[i % len(FRONT)]
        shares = r["survival_pct"][tier]
        chart.polyline(
            [(0.0, 100.0)] + [((h + 1) * 3600.0, s) for h, s in enumerate(shares)],
            colour,
            width=2.2,
        )
        chart.add_legend(f"frontier {i + 1}", colour)
    x = chart.x(target["hours"] * 3600.0)
    y = chart.y(target["share_pct"])
    chart.parts.append(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="#000" stroke-width="2"/>'
    )
    chart.add_legend("target", "#000", "dash")
    return chart.svg("survival curves").replace("drill time [h]", "outage duration [h]")


def _cost_chart(answer: dict[str, Any]) -> str:
    valid = [r for r in answer["results"] if r.get("valid")]
    costs = [r["cost"] for r in valid if r["cost"] is not None]
    if not costs:
        return "<p>No unit costs in the plan: no cost chart.</p>"
    currency = answer.get("currency") or ""
    top = max(costs) * 1.05 or 1.0
    chart = _Chart(top, 0, 100, "carried at the first target [%]", (1000.0, "k"), 320)
    front = set(answer["frontier"])
    points = []
    for r in valid:
        share = r["targets"][0]["achieved_pct"]
        colour = "#c0392b" if r["key"] in front else ("#27ae60" if r["meets"] else GREY)
        chart.parts.append(
            f'<circle cx="{chart.x(r["cost"]):.1f}" cy="{chart.y(share):.1f}" r="4"'
            f' fill="{colour}"><title>{_esc(r["label"])}: {share:.1f} %</title></circle>'
        )
        if r["key"] in front:
            points.append((r["cost"], share))
    chart.polyline(sorted(points), "#c0392b", width=1.4)
    chart.add_legend("frontier", "#c0392b")
    chart.add_legend("meets the targets", "#27ae60")
    chart.add_legend("does not", GREY)
    return chart.svg("cost against survival").replace(
        "drill time [k]", f"cost [thousand {_esc(currency)}]"
    )


def donors_text(answer: dict[str, Any], lang: str) -> str | None:
    """The plan's donor cars in words (`[donors]`), or None when it has none: the
    survival figures count them, so a reader must see what was assumed."""
    donors = answer.get("donors")
    if not donors:
        return None
    spread = donors.get("energy_spread_kwh") or 0.0
    energy = f"{donors['energy_kwh']:g}" + (f" ± {spread:g}" if spread else "")
    seed = answer.get("seed")
    if lang == "tr":
        text = (
            f"Bağışçı araçlar: saatte ortalama {donors['rate_per_h']:g} araç (Poisson),"
            f" her biri sahibinin %{donors['reserve_soc_pct']:g} rezervinin üstünde"
            f" {energy} kWh veriyor ({donors['capacity_kwh']:g} kWh batarya);"
            f" bağışçılara ayrılmış {donors['chargers']} şarj ünitesi"
        )
        return text + (f", tohum {seed}." if seed is not None else ".")
    text = (
        f"Donor cars: {donors['rate_per_h']:g} arrivals per hour on average (Poisson), each"
        f" giving {energy} kWh above its owner's {donors['reserve_soc_pct']:g} % reserve"
        f" ({donors['capacity_kwh']:g} kWh batteries), on {donors['chargers']} chargers kept"
        " for donors"
    )
    return text + (f", seed {seed}." if seed is not None else ".")


def plan_html(answer: dict[str, Any]) -> str:
    by_key = {r["key"]: r for r in answer["results"]}
    body = [
        f"<h1>Plan: {_esc(answer['plan'])}</h1>",
        f'<p class="meta">Site file {_esc(answer["site"])}; profile {_esc(answer["profile"])};'
        f" {answer['combinations']} combinations, {answer['drills']} real drills."
        " Targets: " + "; ".join(_esc(_target_text(t, "en")) for t in answer["targets"]) + ".</p>",
    ]
    for lang in ("en", "tr"):
        title, what = TITLES[lang]
        targets = "; ".join(_esc(_target_text(t, lang)) for t in answer["targets"])
        body.append(f'<h2 lang="{lang}">{title}</h2><p lang="{lang}">{what}: {targets}</p>')
        donors = donors_text(answer, lang)
        if donors is not None:
            body.append(f'<p lang="{lang}">{_esc(donors)}</p>')
        rows = procurement_rows(answer, lang)
        if rows:
            body.append(_table(HEADERS[lang], rows))
        else:
            none = (
                "No combination meets the targets."
                if lang == "en"
                else "Hiçbir bileşim hedefleri karşılamıyor."
            )
            body.append(f"<p>{none}</p>")
    body.append("<h2>Survival curves (first target's tier)</h2>")
    body.append(_curves(answer))
    body.append("<h2>Cost against survival</h2>")
    body.append(_cost_chart(answer))
    body.append("<h2>Fast model against the real controller</h2>")
    for i, key in enumerate(answer["frontier"]):
        r = by_key[key]
        check = r.get("check") or {}
        body.append(f"<h3>Frontier {i + 1}: {_esc(r['label'])}</h3>")
        body.append(
            _table(
                ["tier", "hours", "starts drilled", "fast model [%]", "drills [%]"],
                [
                    (t["tier"], t["hours"], t["starts"], t["fast_pct"], t["drill_pct"])
                    for t in check.get("targets", [])
                ],
            )
        )
        disagreements = check.get("disagreements", [])
        if disagreements:
            body.append(
                _table(
                    ["start hour", "tier", "hours", "fast model h", "drill h", "why"],
                    [
                        (
                            d["start"],
                            d["tier"],
                            d["hours"],
                            d.get("fast_hours", ""),
                            d.get("drill_hours", ""),
                            d["why"],
                        )
                        for d in disagreements
                    ],
                )
            )
        else:
            body.append("<p>No disagreement.</p>")
    body.append("<h2>Every combination</h2>")
    body.append(
        _table(
            ["combination", "cost", "targets met", "valid site"],
            [
                (
                    r["label"],
                    "-" if r["cost"] is None else f"{r['cost']:,.0f}",
                    "yes" if r["meets"] else "no",
                    "yes" if r.get("valid") else "; ".join(r.get("problems", [])),
                )
                for r in answer["results"]
            ],
        )
    )
    return _page(f"Plan: {answer['plan']}", "\n".join(body))


def write_plan_report(answer: dict[str, Any], out: Path) -> Path:
    path = out / "plan.html"
    path.write_text(plan_html(answer), encoding="utf-8")
    return path
