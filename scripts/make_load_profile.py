"""Write the reference site's sample year: hourly load per tier and PV, 8760 rows.

    .venv/bin/python scripts/make_load_profile.py [--out config/profile_moda_year.csv]

Deterministic (no randomness beyond a seeded generator, no data download): the
same file every time, so it can be checked in and regenerated. It is a model,
not a measurement, of the Moda shelter of `config/site.toml` (a school
gymnasium in Kadıköy, Istanbul, used as a community shelter):

- hour 0 is 2025-01-01 00:00 local time (UTC+3 all year; a Wednesday);
- PV: the 20 kWp roof (rated 20 kW AC), latitude 41.0 N, longitude 29.0 E:
  solar position from the declination and hour angle (solar noon is about
  13:04 local, as Istanbul lies west of the UTC+3 meridian), clear-sky
  irradiance ~ 1000 W/m2 x cos(zenith)^1.15 x 0.9, 14 % system losses, and a
  daily clearness index drawn around a seasonal mean (cloudy winters ~0.45,
  clear summers ~0.85);
- loads: each load of the site file at a duty cycle that follows the hour,
  the weekday and the season: oxygen concentrators all the time, emergency
  lighting at night, the kitchen at meal times, heating circulation and HVAC
  heating in winter, HVAC cooling on summer afternoons, hot water mornings
  and evenings, with +-5 % noise.

Columns: hour, life_safety_w, critical_w, essential_w, comfort_w, pv_w [W].
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

HOURS = 8760
FIRST_WEEKDAY = 2  # 2025-01-01 is a Wednesday (0 = Monday)
LATITUDE_DEG = 41.0
SOLAR_NOON_H = 12.0 + (45.0 - 29.0) / 15.0  # local clock time of solar noon [h]
PV_KWP = 20.0
PV_RATING_W = 20000.0
LOSSES = 0.14


def clearness_mean(day: int) -> float:
    """Seasonal mean clearness index: ~0.45 in January, ~0.85 in July."""
    return 0.65 - 0.2 * math.cos(2 * math.pi * (day - 15) / 365)


def pv_w(day: int, hour: float, clearness: float) -> float:
    declination = math.radians(23.45) * math.sin(2 * math.pi * (284 + day + 1) / 365)
    hour_angle = math.radians(15.0 * (hour - SOLAR_NOON_H))
    lat = math.radians(LATITUDE_DEG)
    cos_z = math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(
        declination
    ) * math.cos(hour_angle)
    if cos_z <= 0:
        return 0.0
    irradiance = 1000.0 * cos_z**1.15 * 0.9 * min(1.0, clearness / 0.75)
    return min(PV_RATING_W, PV_KWP * irradiance * (1 - LOSSES))


def heating(day: int) -> float:
    """0..1: how much heating the day needs (cold January, none in July)."""
    return max(0.0, math.cos(2 * math.pi * (day - 20) / 365)) ** 1.2


def cooling(day: int) -> float:
    return max(0.0, -math.cos(2 * math.pi * (day - 20) / 365)) ** 1.5


def loads_w(day: int, hour: int, weekday: int, rng: random.Random) -> tuple[float, ...]:
    night = hour >= 18 or hour < 7
    weekend = weekday >= 5
    heat, cool = heating(day), cooling(day)

    def noise() -> float:
        return 1.0 + rng.uniform(-0.05, 0.05)

    life_safety = (
        800 * (1.0 if night else 0.2)  # emergency lighting
        + 1200 * 0.35  # radio and comms
        + 600 * 0.4  # medical fridge compressor duty
        + 1800 * 0.9  # oxygen concentrators
    ) * noise()
    critical = (
        3000 * (0.05 if night else 0.15)  # water pump
        + 1500 * (0.1 + 0.8 * heat)  # heating circulation
        + 1000 * (0.2 if night else 0.5)  # phone charging
        + 500 * 0.6  # network
    ) * noise()
    meals = {7: 0.4, 8: 0.4, 12: 0.5, 13: 0.5, 18: 0.6, 19: 0.6}
    evening = 17 <= hour < 23
    essential = (
        6000 * meals.get(hour, 0.02) * (1.2 if weekend else 1.0)  # kitchen
        + 2000 * (0.7 if evening else (0.05 if night else 0.2 + 0.2 * heat))  # lighting
    ) * noise()
    afternoon = 12 <= hour < 18
    comfort = (
        12000 * (0.45 * heat * (0.6 if night else 1.0) + 0.6 * cool * (1.0 if afternoon else 0.3))
        + 6000 * (0.4 if hour in (6, 7, 8, 19, 20, 21) else 0.03)  # hot water
        + 7500 * (0.0 if night else 0.03)  # lift
        + 11000 * (0.3 if 18 <= hour < 23 else 0.02)  # EV charging of non-donor cars
    ) * noise()
    return life_safety, critical, essential, comfort


def rows() -> list[tuple[int, float, float, float, float, float]]:
    rng = random.Random(2025)
    out = []
    clearness = 0.0
    for h in range(HOURS):
        day, hour = divmod(h, 24)
        if hour == 0:
            clearness = min(0.95, max(0.1, rng.gauss(clearness_mean(day), 0.18)))
        weekday = (FIRST_WEEKDAY + day) % 7
        ls, crit, ess, comf = loads_w(day, hour, weekday, rng)
        pv = pv_w(day, hour + 0.5, clearness)
        out.append((h, round(ls, 1), round(crit, 1), round(ess, 1), round(comf, 1), round(pv, 1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="config/profile_moda_year.csv")
    args = parser.parse_args()
    path = Path(args.out)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["hour", "life_safety_w", "critical_w", "essential_w", "comfort_w", "pv_w"])
        writer.writerows(rows())
    print(f"{path}: {HOURS} hours")


if __name__ == "__main__":
    main()
