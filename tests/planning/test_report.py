"""plan.html: self-contained, both charts, the procurement summary in English and Turkish."""

from __future__ import annotations

from typing import Any

from resilience.planning.report import plan_html, procurement_rows


def answer() -> dict[str, Any]:
    def result(key: str, chargers: int, cost: float, share: float, meets: bool) -> dict[str, Any]:
        return {
            "key": key,
            "label": f"{chargers} chargers",
            "combination": {
                "chargers": chargers,
                "grid_forming": 1,
                "v2l_outlets": 2,
                "pv_kwp": 20.0,
            },
            "cost": cost,
            "valid": True,
            "meets": meets,
            "survival_pct": {"life_safety": [100.0, share], "critical": [100.0, 50.0]},
            "targets": [
                {"tier": "life_safety", "hours": 2, "share_pct": 95.0, "achieved_pct": share}
            ],
        }

    cheap = result("a", 2, 30000.0, 80.0, False)
    good = result("b", 4, 60000.0, 97.0, True)
    good["check"] = {
        "targets": [
            {"tier": "life_safety", "hours": 2, "starts": 3, "fast_pct": 100.0, "drill_pct": 66.67}
        ],
        "disagreements": [
            {
                "start": 4242,
                "tier": "life_safety",
                "hours": 2,
                "fast_hours": 2,
                "drill_hours": 1.5,
                "why": "fast model: carried 2 h; drill: life-safety served 1.5 h",
            }
        ],
    }
    return {
        "plan": "Moda <shelter>",
        "site": "site.toml",
        "profile": "profile.csv",
        "targets": [{"tier": "life_safety", "hours": 2, "share_pct": 95.0}],
        "currency": "EUR",
        "combinations": 2,
        "drills": 3,
        "frontier": ["b"],
        "results": [cheap, good],
    }


def test_procurement_rows_in_both_languages() -> None:
    (en,) = procurement_rows(answer(), "en")
    assert en[:5] == (4, 1, 2, "20", "60,000 EUR")
    assert en[5] == "life-safety 2 h: 97.0 %" and en[6] == "life-safety 2 h: 66.7 % (3)"
    (tr,) = procurement_rows(answer(), "tr")
    assert tr[5] == "yaşam güvenliği 2 sa: 97.0 %"


def test_plan_html_is_self_contained() -> None:
    html = plan_html(answer())
    assert "Procurement summary" in html and "Tedarik özeti" in html
    assert (
        "yaşam güvenliği 2 sa, başlangıçların %95" in html and "after 95 % of outage starts" in html
    )
    assert html.count("<svg") == 2 and "cost [thousand EUR]" in html
    assert "4242" in html and "served 1.5 h" in html  # the disagreement, listed
    assert "Moda &lt;shelter&gt;" in html  # escaped
    assert "<script" not in html and "http" not in html.replace('lang="en"', "")


def test_plan_html_says_what_donors_were_assumed() -> None:
    assert "Donor" not in plan_html(answer())  # a plan without [donors]
    donors = {
        "chargers": 2,
        "rate_per_h": 0.5,
        "energy_kwh": 20.0,
        "energy_spread_kwh": 5.0,
        "capacity_kwh": 77.4,
        "reserve_soc_pct": 50.0,
    }
    html = plan_html({**answer(), "donors": donors, "seed": 7})
    assert (
        "Donor cars: 0.5 arrivals per hour on average (Poisson), each giving 20 ± 5 kWh above"
        " its owner&#x27;s 50 % reserve (77.4 kWh batteries), on 2 chargers kept for donors,"
        " seed 7." in html
    )
    assert "Bağışçı araçlar: saatte ortalama 0.5 araç" in html
