"""The simulated SunSpec devices as a third-party client sees them: pysunspec2 reads the
grid meter's and the PV inverter's maps over Modbus TCP on loopback.

Every point the simulated firmware does not implement must read as absent (None): it
holds its type's own "not implemented" value. Every point it implements must read as
the plant's state (the implemented set is listed here, so a point that silently stops
being implemented fails too). The point tables of `resilience.drivers.sunspec_models`
(what the simulator renders from) are checked against pysunspec2's model definitions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import sunspec2
from sunspec2 import mb
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from firmware_sim.server import SimSite
from resilience.config import load_site
from resilience.drivers import sunspec_models as models
from resilience.service import quiet_pymodbus
from tests.sites import modbus_only

pytestmark = pytest.mark.integration

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
MODEL_DIR = Path(sunspec2.__file__).parent / "models" / "json"

TABLES = {
    1: models.COMMON_POINTS,
    103: models.INVERTER_103_POINTS,
    120: models.NAMEPLATE_120_POINTS,
    123: models.CONTROLS_123_POINTS,
    203: models.METER_203_POINTS,
}

IMPLEMENTED = {
    1: {"Mn", "Md", "Vr", "SN", "DA"},
    103: {
        *("A", "AphA", "AphB", "AphC", "A_SF", "PPVphAB", "PPVphBC", "PPVphCA"),
        *("PhVphA", "PhVphB", "PhVphC", "V_SF", "W", "W_SF", "Hz", "Hz_SF", "WH", "WH_SF"),
        *("St", "Evt1", "Evt2"),
    },
    120: {"DERTyp", "WRtg", "WRtg_SF"},
    123: {
        *("Conn_WinTms", "Conn_RvrtTms", "Conn", "WMaxLimPct", "WMaxLimPct_WinTms"),
        *("WMaxLimPct_RvrtTms", "WMaxLimPct_RmpTms", "WMaxLim_Ena", "WMaxLimPct_SF"),
    },
    203: {
        *("A", "AphA", "AphB", "AphC", "A_SF", "PhV", "PhVphA", "PhVphB", "PhVphC", "PPV"),
        *("PhVphAB", "PhVphBC", "PhVphCA", "V_SF", "Hz", "Hz_SF", "W", "WphA", "WphB"),
        *("WphC", "W_SF", "TotWhExp", "TotWhImp", "TotWh_SF", "Evt"),
    },
}
ACCUMULATORS = {"acc16", "acc32", "acc64"}  # their sentinel is 0: an empty one reads absent


@pytest.mark.parametrize("model_id", sorted(TABLES))
def test_point_tables_match_the_sunspec_model_definitions(model_id: int) -> None:
    definition = json.loads((MODEL_DIR / f"model_{model_id}.json").read_text())
    points = [(p["name"], p["type"], p.get("size", 1)) for p in definition["group"]["points"][2:]]
    assert [tuple(p) for p in TABLES[model_id]] == points


@pytest.mark.parametrize("vtype", sorted(models.NOT_IMPLEMENTED))
def test_each_sentinel_reads_as_not_implemented_in_pysunspec2(vtype: str) -> None:
    info = mb.point_type_info[vtype]
    registers = models.NOT_IMPLEMENTED[vtype]
    assert len(registers) == info.len
    decoded = info.data_to(b"".join(r.to_bytes(2, "big") for r in registers))
    if vtype == "pad":  # padding is not a point: it reads 0, implemented or not
        assert decoded == mb.SUNS_UNIMPL_PAD == 0
    else:
        assert not info.is_impl(decoded)


def scan(port: int, unit_id: int) -> dict[int, Any]:
    """pysunspec2's view of one device: model id -> its model object, every point read."""
    device = SunSpecModbusClientDeviceTCP(
        slave_id=unit_id, ipaddr="127.0.0.1", ipport=port, timeout=5
    )
    try:
        device.scan()
        return {
            model_id: device.models[model_id][0]
            for model_id in device.models
            if isinstance(model_id, int)
        }
    finally:
        device.disconnect()


def check_implemented(found: dict[int, Any]) -> None:
    """Implemented points read a value; the others read None."""
    wrong = []
    for model_id, model in found.items():
        for point in TABLES[model_id]:
            value = model.points[point.name].value
            if point.type == "pad":
                if value != 0:
                    wrong.append(f"model {model_id} {point.name}: padding reads {value!r}")
            elif point.name in IMPLEMENTED[model_id]:
                absent_ok = point.type in ACCUMULATORS  # an empty accumulator reads as absent
                if value is None and not absent_ok:
                    wrong.append(f"model {model_id} {point.name}: implemented, read None")
            elif value is not None:
                wrong.append(f"model {model_id} {point.name} ({point.type}): read {value!r}")
    assert wrong == []


async def test_pysunspec2_reads_the_simulated_meter_and_inverter() -> None:
    quiet_pymodbus()
    config = modbus_only(load_site(SITE))
    async with SimSite(config, bind_free_ports=True) as sim:
        controller_config = sim.controller_config()
        meter_cfg = controller_config.devices["grid_meter"]
        pv_cfg = controller_config.devices["pv"]
        assert meter_cfg.port is not None and pv_cfg.port is not None
        meter = await asyncio.to_thread(scan, meter_cfg.port, meter_cfg.unit_id)
        pv = await asyncio.to_thread(scan, pv_cfg.port, pv_cfg.unit_id)
        plant = sim.plant
        inverter = plant.inverters["pv"]

        assert sorted(meter) == [1, 203] and sorted(pv) == [1, 103, 120, 123]
        check_implemented(meter)
        check_implemented(pv)

        common = meter[1].points
        assert common["Mn"].value == "resilience firmware_sim"
        assert common["SN"].value == "grid_meter" and common["DA"].value == meter_cfg.unit_id
        assert pv[1].points["Md"].value == "sim sunspec_inverter"

        m = meter[203].points
        grid = plant.grid
        assert m["PPV"].cvalue == pytest.approx(grid.voltage_v, abs=0.1)
        assert m["Hz"].cvalue == pytest.approx(grid.measured_frequency_hz, abs=0.01)
        w_step = 10.0 ** m["W_SF"].value
        assert m["W"].cvalue == pytest.approx(
            plant.meter_power_w, abs=max(w_step, 0.02 * abs(plant.meter_power_w))
        )
        assert m["Evt"].value == 0

        p103, p120, p123 = pv[103].points, pv[120].points, pv[123].points
        assert p120["DERTyp"].value == 4
        assert p120["WRtg"].cvalue == pytest.approx(inverter.rating_w)
        assert p103["St"].value == inverter.operating_state
        assert p103["Hz"].cvalue == pytest.approx(plant.bus_frequency_hz, abs=0.01)
        assert p103["W"].cvalue == pytest.approx(
            inverter.power_w, abs=max(10.0 ** p103["W_SF"].value, 0.02 * inverter.power_w)
        )
        assert p123["Conn"].value == int(inverter.connected)
        assert p123["WMaxLim_Ena"].value == int(inverter.limit_enabled)
        assert p123["WMaxLimPct"].cvalue == pytest.approx(inverter.limit_pct)
