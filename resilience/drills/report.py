"""Drill and survival reports: ``report.json`` and one self-contained ``report.html``.

The HTML page works offline: its charts are inline SVG generated here in
Python, its style is inline, and it loads nothing (no script, no font, no
image from anywhere). Charts of a drill: load served per tier (stacked) and
supply over time (DC chargers and V2L outlets apart), each vehicle's state of
charge against its owner's reserve, the mode timeline, grid and bus voltage and
frequency, each load's relay; then hours served and endurance per circuit, the
criteria table and the record (transitions,
violations, island collapses, alarms, vehicles, operator commands, timeline
events). A survival
report has the survival curves and a table.

Units in the data: seconds [s] of drill time, watts [W], kWh, percent [%].
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["drill_html", "survival_html", "write_reports", "write_survival_report"]

TIER_COLOURS = {
    "life_safety": "#c0392b",
    "critical": "#e67e22",
    "essential": "#2e86c1",
    "comfort": "#7fb3d5",
}
MODE_COLOURS = {
    "starting": "#95a5a6",
    "grid_connected": "#27ae60",
    "planned_islanding": "#5dade2",
    "islanding": "#f39c12",
    "black_start": "#e67e22",
    "islanded": "#2874a6",
    "emergency": "#c0392b",
    "resynchronising": "#8e44ad",
}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

W, H = 1000, 260  # chart size [px]
ML, MR, MT, MB = 64, 215, 18, 34  # margins [px]


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _time_axis(t_max: float) -> tuple[float, str]:
    """Scale and unit for the time axis: seconds, minutes or hours."""
    if t_max > 3 * 3600:
        return 3600.0, "h"
    if t_max > 180:
        return 60.0, "min"
    return 1.0, "s"


def _nice_step(span: float, target: int = 6) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = float(10.0 ** math.floor(math.log10(raw)))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return 10.0 * mag


def _ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


class _Chart:
    """A plain x/y SVG chart: axes, grid, ticks; callers add paths in data units."""

    def __init__(
        self,
        x_max: float,
        y_min: float,
        y_max: float,
        y_label: str,
        x_unit: tuple[float, str],
        height: int = H,
        y_ticks: bool = True,
    ) -> None:
        self.y_ticks = y_ticks
        self.x_max = x_max if x_max > 0 else 1.0
        self.y_min = y_min
        self.y_max = y_max if y_max > y_min else y_min + 1.0
        self.height = height
        self.x_scale, self.x_unit = x_unit
        self.parts: list[str] = []
        self.legend: list[tuple[str, str, str]] = []  # label, colour, style
        self.y_label = y_label

    def x(self, t: float) -> float:
        return ML + (W - ML - MR) * t / self.x_max

    def y(self, v: float) -> float:
        plot = self.height - MT - MB
        return MT + plot * (1 - (v - self.y_min) / (self.y_max - self.y_min))

    def polyline(
        self, points: Iterable[tuple[float, float]], colour: str, dash: str = "", width: float = 1.6
    ) -> None:
        coords = " ".join(f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in points)
        if coords:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr}'
                f' points="{coords}"/>'
            )

    def area(
        self,
        upper: Sequence[tuple[float, float]],
        lower: Sequence[tuple[float, float]],
        colour: str,
    ) -> None:
        if not upper:
            return
        pts = [f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in upper]
        pts += [f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in reversed(lower)]
        self.parts.append(
            f'<polygon fill="{colour}" fill-opacity="0.85" stroke="none" points="{" ".join(pts)}"/>'
        )

    def add_legend(self, label: str, colour: str, style: str = "line") -> None:
        self.legend.append((label, colour, style))

    def svg(self, title: str) -> str:
        plot_w = W - ML - MR
        out = [
            f'<svg viewBox="0 0 {W} {self.height}"'
            f' width="{W}" height="{self.height}" role="img" aria-label="{_esc(title)}">',
            f'<rect x="{ML}" y="{MT}" width="{plot_w}" height="{self.height - MT - MB}"'
            ' fill="#fff" stroke="#bbb"/>',
        ]
        for v in _ticks(self.y_min, self.y_max, 5) if self.y_ticks else []:
            yy = self.y(v)
            out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
            out.append(
                f'<text x="{ML - 6}" y="{yy + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>'
            )
        for v in _ticks(0, self.x_max / self.x_scale, 10):
            xx = self.x(v * self.x_scale)
            out.append(
                f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{MT}" y2="{self.height - MB}"'
                ' stroke="#f2f2f2"/>'
            )
            out.append(
                f'<text x="{xx:.1f}" y="{self.height - MB + 16}" text-anchor="middle"'
                f' class="tick">{v:g}</text>'
            )
        out.append(
            f'<text x="{ML + plot_w / 2}" y="{self.height - 4}" text-anchor="middle"'
            f' class="axis">drill time [{self.x_unit}]</text>'
        )
        out.append(
            f'<text x="14" y="{MT + (self.height - MT - MB) / 2}" class="axis"'
            f' transform="rotate(-90 14 {MT + (self.height - MT - MB) / 2})"'
            f' text-anchor="middle">{_esc(self.y_label)}</text>'
        )
        out.extend(self.parts)
        for i, (label, colour, style) in enumerate(self.legend):
            ly = MT + 8 + i * 17
            lx = W - MR + 10
            if style == "area":
                out.append(f'<rect x="{lx}" y="{ly - 6}" width="14" height="10" fill="{colour}"/>')
            else:
                dash = ' stroke-dasharray="5 3"' if style == "dash" else ""
                out.append(
                    f'<line x1="{lx}" x2="{lx + 14}" y1="{ly}" y2="{ly}" stroke="{colour}"'
                    f' stroke-width="2"{dash}/>'
                )
            out.append(f'<text x="{lx + 19}" y="{ly + 4}" class="legend">{_esc(label)}</text>')
        out.append("</svg>")
        return "".join(out)


def _step_points(samples: Sequence[dict[str, Any]], value: Any) -> list[tuple[float, float]]:
    """Sample-and-hold points (each value holds until the next sample)."""
    pts: list[tuple[float, float]] = []
    for i, s in enumerate(samples):
        v = float(value(s))
        t = float(s["t"])
        if i > 0:
            pts.append((t, pts[-1][1]))
        pts.append((t, v))
    return pts


def tier_chart(samples: Sequence[dict[str, Any]], t_max: float) -> str:
    unit = _time_axis(t_max)
    tiers = list(TIER_COLOURS)
    top = max((sum(s["demand_w"].values()) for s in samples), default=1.0) / 1000
    chart = _Chart(t_max, 0, max(top, 1.0) * 1.05, "power [kW]", unit)
    base = [0.0] * len(samples)
    for tier in tiers:
        upper_vals = [b + s["served_w"][tier] / 1000 for b, s in zip(base, samples, strict=True)]
        lower = _hold([float(s["t"]) for s in samples], base)
        upper = _hold([float(s["t"]) for s in samples], upper_vals)
        chart.area(upper, lower, TIER_COLOURS[tier])
        chart.add_legend(f"{tier} served", TIER_COLOURS[tier], "area")
        base = upper_vals
    demand = _step_points(samples, lambda s: sum(s["demand_w"].values()) / 1000)
    chart.polyline(demand, "#333", dash="4 3", width=1.2)
    chart.add_legend("demand (all tiers)", "#333", "dash")
    crit = _step_points(
        samples, lambda s: (s["demand_w"]["life_safety"] + s["demand_w"]["critical"]) / 1000
    )
    chart.polyline(crit, "#c0392b", dash="2 2", width=1.2)
    chart.add_legend("demand life-safety+critical", "#c0392b", "dash")
    return chart.svg("load served per tier")


def _hold(ts: Sequence[float], vs: Sequence[float]) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for i, (t, v) in enumerate(zip(ts, vs, strict=True)):
        if i > 0:
            pts.append((t, pts[-1][1]))
        pts.append((t, v))
    return pts


def supply_chart(samples: Sequence[dict[str, Any]], t_max: float) -> str:
    unit = _time_axis(t_max)
    keys = [
        ("grid_w", "grid import", "#555"),
        ("vehicles_w", "vehicles discharging", "#1f77b4"),
        ("pv_w", "PV", "#f1c40f"),
        ("charging_w", "vehicles charging (-)", "#16a085"),
    ]
    hi = max((max(s[k] for k, _, _ in keys) for s in samples), default=1.0) / 1000
    lo = min((s["charging_w"] for s in samples), default=0.0) / 1000
    chart = _Chart(t_max, min(0.0, lo * 1.05), max(hi * 1.05, 1.0), "power [kW]", unit)
    for key, label, colour in keys:
        chart.polyline(_step_points(samples, lambda s, k=key: s[k] / 1000), colour)
        chart.add_legend(label, colour)
    if samples and "charger_w" in samples[0]:
        # the two kinds of vehicle supply apart: DC chargers (net) and V2L outlets
        for key, label, colour in (
            ("charger_w", "DC chargers (net)", "#8e44ad"),
            ("v2l_w", "V2L outlets", "#d35400"),
        ):
            pts = _step_points(samples, lambda s, k=key: sum(s[k].values()) / 1000)
            chart.polyline(pts, colour, dash="3 2", width=1.2)
            chart.add_legend(label, colour, "dash")
    return chart.svg("supply")


def _runs(samples: Sequence[dict[str, Any]], key: str) -> list[list[tuple[float, float]]]:
    """Sample-and-hold runs of a series, broken where it is 0 (a dead grid or bus has no
    voltage or frequency to draw)."""
    runs: list[list[tuple[float, float]]] = []
    run: list[tuple[float, float]] = []
    for s in samples:
        v = float(s.get(key) or 0.0)
        t = float(s["t"])
        if v > 0:
            if run:
                run.append((t, run[-1][1]))
            run.append((t, v))
        elif run:
            run.append((t, run[-1][1]))
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return runs


def grid_chart(samples: Sequence[dict[str, Any]], t_max: float, what: str) -> str:
    """Grid and site bus voltage [V] (what="v") or frequency [Hz] (what="hz")."""
    unit = _time_axis(t_max)
    keys = [(f"grid_{what}", "grid", "#555"), (f"bus_{what}", "site bus", "#1f77b4")]
    values = [float(s.get(k) or 0.0) for s in samples for k, _, _ in keys]
    live = [v for v in values if v > 0] or [1.0]
    lo, hi = min(live), max(live)
    pad = max((hi - lo) * 0.1, hi * (0.002 if what == "hz" else 0.02))
    label = "voltage [V]" if what == "v" else "frequency [Hz]"
    chart = _Chart(t_max, lo - pad, hi + pad, label, unit, height=200)
    for key, name, colour in keys:
        for run in _runs(samples, key):
            chart.polyline(run, colour)
        chart.add_legend(name, colour)
    return chart.svg(f"grid and bus {label}")


def relay_chart(relays: dict[str, list[list[Any]]], t_max: float) -> str:
    """One lane per load: a bar while its relay is closed (every change the plant saw)."""
    unit = _time_axis(t_max)
    loads = list(relays)
    lane = 14
    height = MT + MB + lane * max(len(loads), 1) + 6
    chart = _Chart(t_max, 0, 1, "", unit, height=height, y_ticks=False)
    for i, load in enumerate(loads):
        y = MT + 3 + i * lane
        changes = relays[load]
        for j, (t, closed) in enumerate(changes):
            end = float(changes[j + 1][0]) if j + 1 < len(changes) else t_max
            if closed and end > float(t):
                x0, x1 = chart.x(float(t)), chart.x(end)
                chart.parts.append(
                    f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.8):.1f}"'
                    f' height="{lane - 4}" fill="#27ae60"><title>{_esc(load)} closed'
                    f" {float(t):.2f}-{end:.2f} s</title></rect>"
                )
        chart.parts.append(
            f'<text x="{W - MR + 10}" y="{y + lane - 5}" class="legend">{_esc(load)}</text>'
        )
    return chart.svg("relay state per load")


def soc_chart(
    samples: Sequence[dict[str, Any]], vehicles: Sequence[dict[str, Any]], t_max: float
) -> str:
    unit = _time_axis(t_max)
    chart = _Chart(t_max, 0, 100, "state of charge [%]", unit, height=300)
    for i, v in enumerate(vehicles):
        colour = PALETTE[i % len(PALETTE)]
        # one line per stay: the line breaks where the vehicle was away
        run: list[tuple[float, float]] = []
        for s in samples:
            if v["id"] in s["soc_pct"]:
                run.append((float(s["t"]), float(s["soc_pct"][v["id"]])))
            elif run:
                chart.polyline(run, colour)
                run = []
        chart.polyline(run, colour)
        chart.polyline(
            [(0, v["reserve_soc_pct"]), (t_max, v["reserve_soc_pct"])],
            colour,
            dash="5 3",
            width=1.0,
        )
        chart.add_legend(f"{v['id']} (reserve {v['reserve_soc_pct']:g} %)", colour)
    return chart.svg("vehicle state of charge against reserve")


def mode_timeline(
    samples: Sequence[dict[str, Any]],
    transitions: Sequence[dict[str, Any]],
    t_max: float,
    first_mode: str = "starting",
) -> str:
    unit = _time_axis(t_max)
    modes_seen = len({first_mode, *(tr["to"] for tr in transitions)})
    chart = _Chart(t_max, 0, 1, "", unit, height=max(110, 40 + 17 * modes_seen), y_ticks=False)
    segments: list[tuple[float, float, str]] = []
    mode, since = first_mode, 0.0
    for tr in transitions:
        t = float(tr["time_s"])
        segments.append((since, t, mode))
        mode, since = tr["to"], t
    segments.append((since, t_max, mode))
    y0, y1 = chart.y(0.85), chart.y(0.15)
    seen: list[str] = []
    for a, b, m in segments:
        x0, x1 = chart.x(a), chart.x(b)
        width = max(x1 - x0, 0.8)
        colour = MODE_COLOURS.get(m, "#999")
        chart.parts.append(
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{y1 - y0:.1f}"'
            f' fill="{colour}"><title>{_esc(m)}: {a:.2f}-{b:.2f} s</title></rect>'
        )
        if m not in seen:
            seen.append(m)
    for m in seen:
        chart.add_legend(m, MODE_COLOURS.get(m, "#999"), "area")
    return chart.svg("mode timeline")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;
max-width:1060px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold}
.pass{background:#27ae60}.fail{background:#c0392b}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr.bad td{background:#fdecea}tr.good td{background:#eafaf1}
.meta{color:#555;font-size:14px}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}
.legend{font-size:12px;fill:#333}svg{display:block;margin:4px 0 10px}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _fmt_t(t: Any) -> str:
    if t is None:
        return ""
    t = float(t)
    if t >= 3600:
        return f"{t / 3600:.2f} h"
    if t >= 120:
        return f"{t / 60:.1f} min"
    return f"{t:.3f} s"


def _fmt_h(hours: Any) -> str:
    return "no load" if hours is None else f"lasts {float(hours):g} h"


def drill_html(result: dict[str, Any]) -> str:
    """The drill report as one self-contained page."""
    sc = result["scenario"]
    samples = result.get("series", [])
    t_max = float(result.get("sim_seconds") or 1.0)
    passed = result["passed"]
    parts = [
        f"<h1>Drill: {_esc(sc['name'])}</h1>",
        f'<p><span class="verdict {"pass" if passed else "fail"}">'
        f"{'PASSED' if passed else 'FAILED'}</span></p>",
        f'<p class="meta">{_esc(sc.get("description", ""))}</p>',
        '<p class="meta">'
        f"site: {_esc(sc.get('site_name', ''))} ({_esc(sc['site'])})<br>"
        f"scenario file: {_esc(sc['file'])}; start {_esc(sc['start'])}<br>"
        f"simulated {_fmt_t(result['sim_seconds'])} in {result['wall_seconds']:.2f} s"
        f" (speed {_esc(result.get('speed'))}, speed-up {_esc(result.get('speedup'))}x),"
        f" {result['control_steps']} control cycles; final mode"
        f" {_esc(result.get('final_mode'))}</p>",
    ]
    if sc.get("events_dropped"):
        parts.append(
            f'<p class="meta">shortened run: events not reached:'
            f" {_esc(', '.join(sc['events_dropped']))}</p>"
        )
    parts.append("<h2>Pass criteria</h2>")
    rows = []
    for c in result["criteria"]:
        rows.append(
            (
                c["name"],
                c["limit"],
                c["measured"],
                "pass" if c["passed"] else "FAIL",
                c.get("detail", ""),
            )
        )
    parts.append(_table(["criterion", "limit", "measured", "verdict", "detail"], rows))
    if samples:
        parts.append("<h2>Mode timeline</h2>")
        parts.append(mode_timeline(samples, result["transitions"], t_max))
        parts.append("<h2>Load served per tier</h2>")
        parts.append(tier_chart(samples, t_max))
        parts.append("<h2>Supply</h2>")
        parts.append(supply_chart(samples, t_max))
        parts.append("<h2>Vehicles: state of charge against the owner's reserve</h2>")
        parts.append(soc_chart(samples, result["vehicles"], t_max))
        if "grid_v" in samples[0]:
            parts.append("<h2>Grid and site bus: voltage and frequency</h2>")
            parts.append(grid_chart(samples, t_max, "v"))
            parts.append(grid_chart(samples, t_max, "hz"))
    if result.get("relays"):
        parts.append("<h2>Relays (as the plant recorded them)</h2>")
        parts.append(relay_chart(result["relays"], t_max))
    if result.get("served_h"):
        parts.append("<h2>Per circuit: hours served, endurance at the end</h2>")
        parts.append(
            f'<p class="meta">served: hours every load of the tier on the circuit was'
            f" energised. Endurance: {_esc(result.get('endurance_source', ''))}.</p>"
        )
        tiers_all = list(TIER_COLOURS)
        rows_c = []
        for circuit, served in result["served_h"].items():
            endurance = result.get("endurance", {}).get(circuit, {})
            rows_c.append(
                [
                    circuit,
                    *(
                        ""
                        if t not in served
                        else f"{served[t]:g} h served; {_fmt_h(endurance.get(t))}"
                        for t in tiers_all
                    ),
                ]
            )
        parts.append(_table(["circuit", *tiers_all], rows_c))
    parts.append("<h2>Energy per tier [kWh]</h2>")
    tiers = list(TIER_COLOURS)
    parts.append(
        _table(
            ["", *tiers],
            [
                ["served", *(result["served_kwh"].get(t, 0) for t in tiers)],
                ["unserved (site)", *(result["unserved_kwh"].get(t, 0) for t in tiers)],
                [
                    "unserved (site bus)",
                    *(result.get("unserved_kwh_bus", {}).get(t, 0) for t in tiers),
                ],
            ],
        )
    )
    parts.append("<h2>Vehicles</h2>")
    parts.append(
        _table(
            [
                "vehicle",
                "connector",
                "reserve %",
                "start %",
                "min %",
                "end %",
                "given kWh",
                "received kWh",
                "arrived",
                "left",
            ],
            [
                (
                    v["id"],
                    v["connector"],
                    v["reserve_soc_pct"],
                    v["start_soc_pct"],
                    v["min_soc_pct"],
                    v["end_soc_pct"],
                    v["energy_given_kwh"],
                    v["energy_received_kwh"],
                    _fmt_t(v["arrived_s"]),
                    _fmt_t(v["left_s"]),
                )
                for v in result["vehicles"]
            ],
        )
    )
    parts.append("<h2>Safety violations (recorded by the plant)</h2>")
    if result["safety_violations"]:
        parts.append(
            _table(
                ["time", "kind", "detail"],
                [
                    (_fmt_t(v["time_s"]), v["kind"], v["detail"])
                    for v in result["safety_violations"]
                ],
            )
        )
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Island collapses (counted by the plant)</h2>")
    parts.append(
        '<p class="meta">The bus of an island went dead with loads on. Caused by the'
        " controller: also a safety violation (island_collapse). Caused by the world (a"
        " grid-former unplugged or faulted): counted, not a violation.</p>"
    )
    collapses = result.get("island_collapses", [])
    if collapses:
        parts.append(
            _table(
                ["time", "bus live again", "caused by", "cause", "loads dropped [kW]", "detail"],
                [
                    (
                        _fmt_t(o["time_s"]),
                        _fmt_t(o["ended_s"]) if o["ended_s"] is not None else "not again",
                        o["by"],
                        o["cause"],
                        round(o["loads_w"] / 1000, 2),
                        o["detail"],
                    )
                    for o in collapses
                ],
            )
        )
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Transitions</h2>")
    parts.append(
        _table(
            ["time", "from", "to", "trigger", "reason"],
            [
                (_fmt_t(t["time_s"]), t["from"], t["to"], t["trigger"], t["reason"])
                for t in result["transitions"]
            ],
        )
    )
    parts.append("<h2>Alarms</h2>")
    parts.append(
        _table(
            ["raised", "cleared", "code", "severity", "message"],
            [
                (
                    _fmt_t(a["raised_s"]),
                    _fmt_t(a["cleared_s"]),
                    a["code"],
                    a["severity"],
                    a["message"],
                )
                for a in result["alarms"]
            ],
        )
    )
    if result.get("storm_watch"):
        parts.append("<h2>Storm watch (CAP alerts)</h2>")
        parts.append(
            _table(
                ["received", "file", "status", "acted on", "island at", "reason"],
                [
                    (
                        _fmt_t(s["time_s"]),
                        s["file"],
                        s["status"],
                        "yes" if s["active"] else "no",
                        _fmt_t(s["island_at_s"]),
                        s["reason"],
                    )
                    for s in result["storm_watch"]
                ],
            )
        )
    parts.append("<h2>Operator commands</h2>")
    parts.append(
        _table(
            ["time", "command", "args", "outcome", "detail", "why"],
            [
                (
                    _fmt_t(c["time_s"]),
                    c["command"],
                    json.dumps(c["args"]),
                    c["outcome"],
                    c["detail"],
                    c.get("why", ""),
                )
                for c in result.get("commands", [])
            ],
        )
    )
    parts.append("<h2>Timeline events applied</h2>")
    parts.append(
        _table(
            ["time", "kind", "what", "note"],
            [
                (_fmt_t(e["time_s"]), e["kind"], e["what"], e.get("note", ""))
                for e in result.get("events", [])
            ],
        )
    )
    body = "\n".join(parts)
    return _page(f"Drill report: {sc['name']}", _colour_rows(body, result["criteria"]))


def _colour_rows(body: str, criteria: Sequence[dict[str, Any]]) -> str:
    for c in criteria:
        cell = f"<tr><td>{_esc(c['name'])}</td>"
        cls = "good" if c["passed"] else "bad"
        body = body.replace(cell, f'<tr class="{cls}"><td>{_esc(c["name"])}</td>', 1)
    return body


def write_reports(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write DIR/report.json and DIR/report.html; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    html_path = out / "report.html"
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    html_path.write_text(drill_html(result), encoding="utf-8")
    return json_path, html_path


# --------------------------------------------------------------------------- survival
def survival_chart(result: dict[str, Any]) -> str:
    hours = result["durations_h"]
    h_max = float(hours[-1]) if hours else 1.0
    chart = _Chart(
        h_max * 3600, 0, 100, "share of outage starts survived [%]", (3600.0, "h"), height=320
    )
    for key, colour in (("life_safety", "#c0392b"), ("critical", "#e67e22")):
        shares = result["survival_pct"][key]
        pts = [(0.0, 100.0)] + [(h * 3600.0, s) for h, s in zip(hours, shares, strict=True)]
        chart.polyline(pts, colour, width=2.2)
        label = "life-safety" if key == "life_safety" else "life-safety + critical"
        chart.add_legend(label, colour)
    svg = chart.svg("survival")
    return svg.replace("drill time [h]", "outage duration [h]")


def survival_html(result: dict[str, Any]) -> str:
    hours = result["durations_h"]
    marks = [h for h in hours if h in (1, 2, 4, 8, 12, 24, 48, 72, 96, 120, 168) or h == hours[-1]]
    idx = {h: i for i, h in enumerate(hours)}
    rows = [
        (
            h,
            f"{result['survival_pct']['life_safety'][idx[h]]:.1f}",
            f"{result['survival_pct']['critical'][idx[h]]:.1f}",
        )
        for h in sorted(set(marks))
    ]
    body = [
        f"<h1>Outage survival: {_esc(result['site_name'])}</h1>",
        '<p class="meta">An outage starts at every hour of the load and PV profile'
        f" ({result['starts']} starts, {_esc(result['profile'])}); for each duration, the share"
        " of starts in which the tiers were carried all the way by the vehicles present"
        " (energy above their owners' reserves) and the PV."
        f" Vehicles start at {result['start_soc_pct']:g} % SoC."
        f" Computed in {result['compute_seconds'] * 1000:.0f} ms.</p>",
        survival_chart(result),
        _table(["outage [h]", "life-safety survives [%]", "life-safety + critical [%]"], rows),
        "<h2>Vehicles</h2>",
        _table(
            ["vehicle", "connector", "capacity kWh", "reserve %", "available h/week"],
            [
                (
                    v["id"],
                    v["connector"],
                    v["capacity_kwh"],
                    v["reserve_soc_pct"],
                    v["available_hours_per_week"],
                )
                for v in result["vehicles"]
            ],
        ),
        "<h2>Assumptions</h2><ul>"
        + "".join(f"<li>{_esc(a)}</li>" for a in result["assumptions"])
        + "</ul>",
    ]
    return _page(f"Survival: {result['site_name']}", "\n".join(body))


def write_survival_report(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "survival.json"
    html_path = out / "survival.html"
    json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    html_path.write_text(survival_html(result), encoding="utf-8")
    return json_path, html_path
