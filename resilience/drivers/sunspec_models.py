"""The SunSpec models the drivers and the simulated devices speak, point by point: each
point's name, SunSpec type and size [registers], in register order after the model's
ID and L registers, and the "not implemented" value of each type.

A device that does not implement a point answers its type's sentinel (`NOT_IMPLEMENTED`,
the values of the SunSpec Information Model Specification, as pysunspec2's
`sunspec2.mb.unimpl_value` has them): 0x8000 for int16 and sunssf, 0xFFFF for uint16,
count, enum16 and bitfield16, 0xFFFFFFFF for uint32, enum32 and bitfield32,
0x80000000 for int32, 0 for the accumulators and pad, NUL for strings. A client reads
such a point as absent; our drivers refuse it where they need the point
(`sunspec.SunSpecDriver`). tests/firmware_sim/test_sunspec_client.py checks these
tables against pysunspec2's model definitions, and the simulated maps against
pysunspec2 itself.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "COMMON_POINTS",
    "CONTROLS_123_POINTS",
    "INVERTER_103_POINTS",
    "METER_203_POINTS",
    "NAMEPLATE_120_POINTS",
    "NOT_IMPLEMENTED",
    "Point",
    "not_implemented",
    "offset_of",
]


class Point(NamedTuple):
    name: str
    type: str
    size: int  # [registers]


NOT_IMPLEMENTED: Final[dict[str, tuple[int, ...]]] = {
    "int16": (0x8000,),
    "sunssf": (0x8000,),
    "uint16": (0xFFFF,),
    "count": (0xFFFF,),
    "enum16": (0xFFFF,),
    "bitfield16": (0xFFFF,),
    "acc16": (0,),
    "pad": (0,),
    "int32": (0x8000, 0x0000),
    "uint32": (0xFFFF, 0xFFFF),
    "enum32": (0xFFFF, 0xFFFF),
    "bitfield32": (0xFFFF, 0xFFFF),
    "acc32": (0, 0),
    "ipaddr": (0, 0),
    "int64": (0x8000, 0, 0, 0),
    "uint64": (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF),
    "acc64": (0, 0, 0, 0),
    "float32": (0x7FC0, 0x0000),
}
"""Each fixed-size type's sentinel, as registers (high word first). Strings: all NUL."""


def not_implemented(points: tuple[Point, ...]) -> list[int]:
    """The registers of a model in which no point is implemented."""
    registers: list[int] = []
    for point in points:
        if point.type == "string":
            registers += [0] * point.size
            continue
        sentinel = NOT_IMPLEMENTED.get(point.type)
        if sentinel is None or len(sentinel) != point.size:
            raise ValueError(
                f"{point.name}: no sentinel for {point.size} registers of {point.type}"
            )
        registers += sentinel
    return registers


def offset_of(points: tuple[Point, ...], name: str) -> int:
    """A point's offset [registers] from the model's first data register."""
    offset = 0
    for point in points:
        if point.name == name:
            return offset
        offset += point.size
    raise KeyError(f"no point {name!r} in this model")


COMMON_POINTS: Final[tuple[Point, ...]] = (
    Point("Mn", "string", 16),
    Point("Md", "string", 16),
    Point("Opt", "string", 8),
    Point("Vr", "string", 8),
    Point("SN", "string", 16),
    Point("DA", "uint16", 1),
    Point("Pad", "pad", 1),
)
"""Model 1: Common, after its ID and L registers."""

INVERTER_103_POINTS: Final[tuple[Point, ...]] = (
    Point("A", "uint16", 1),
    Point("AphA", "uint16", 1),
    Point("AphB", "uint16", 1),
    Point("AphC", "uint16", 1),
    Point("A_SF", "sunssf", 1),
    Point("PPVphAB", "uint16", 1),
    Point("PPVphBC", "uint16", 1),
    Point("PPVphCA", "uint16", 1),
    Point("PhVphA", "uint16", 1),
    Point("PhVphB", "uint16", 1),
    Point("PhVphC", "uint16", 1),
    Point("V_SF", "sunssf", 1),
    Point("W", "int16", 1),
    Point("W_SF", "sunssf", 1),
    Point("Hz", "uint16", 1),
    Point("Hz_SF", "sunssf", 1),
    Point("VA", "int16", 1),
    Point("VA_SF", "sunssf", 1),
    Point("VAr", "int16", 1),
    Point("VAr_SF", "sunssf", 1),
    Point("PF", "int16", 1),
    Point("PF_SF", "sunssf", 1),
    Point("WH", "acc32", 2),
    Point("WH_SF", "sunssf", 1),
    Point("DCA", "uint16", 1),
    Point("DCA_SF", "sunssf", 1),
    Point("DCV", "uint16", 1),
    Point("DCV_SF", "sunssf", 1),
    Point("DCW", "int16", 1),
    Point("DCW_SF", "sunssf", 1),
    Point("TmpCab", "int16", 1),
    Point("TmpSnk", "int16", 1),
    Point("TmpTrns", "int16", 1),
    Point("TmpOt", "int16", 1),
    Point("Tmp_SF", "sunssf", 1),
    Point("St", "enum16", 1),
    Point("StVnd", "enum16", 1),
    Point("Evt1", "bitfield32", 2),
    Point("Evt2", "bitfield32", 2),
    Point("EvtVnd1", "bitfield32", 2),
    Point("EvtVnd2", "bitfield32", 2),
    Point("EvtVnd3", "bitfield32", 2),
    Point("EvtVnd4", "bitfield32", 2),
)
"""Model 103: Inverter (Three Phase), after its ID and L registers."""

NAMEPLATE_120_POINTS: Final[tuple[Point, ...]] = (
    Point("DERTyp", "enum16", 1),
    Point("WRtg", "uint16", 1),
    Point("WRtg_SF", "sunssf", 1),
    Point("VARtg", "uint16", 1),
    Point("VARtg_SF", "sunssf", 1),
    Point("VArRtgQ1", "int16", 1),
    Point("VArRtgQ2", "int16", 1),
    Point("VArRtgQ3", "int16", 1),
    Point("VArRtgQ4", "int16", 1),
    Point("VArRtg_SF", "sunssf", 1),
    Point("ARtg", "uint16", 1),
    Point("ARtg_SF", "sunssf", 1),
    Point("PFRtgQ1", "int16", 1),
    Point("PFRtgQ2", "int16", 1),
    Point("PFRtgQ3", "int16", 1),
    Point("PFRtgQ4", "int16", 1),
    Point("PFRtg_SF", "sunssf", 1),
    Point("WHRtg", "uint16", 1),
    Point("WHRtg_SF", "sunssf", 1),
    Point("AhrRtg", "uint16", 1),
    Point("AhrRtg_SF", "sunssf", 1),
    Point("MaxChaRte", "uint16", 1),
    Point("MaxChaRte_SF", "sunssf", 1),
    Point("MaxDisChaRte", "uint16", 1),
    Point("MaxDisChaRte_SF", "sunssf", 1),
    Point("Pad", "pad", 1),
)
"""Model 120: Nameplate, after its ID and L registers."""

CONTROLS_123_POINTS: Final[tuple[Point, ...]] = (
    Point("Conn_WinTms", "uint16", 1),
    Point("Conn_RvrtTms", "uint16", 1),
    Point("Conn", "enum16", 1),
    Point("WMaxLimPct", "uint16", 1),
    Point("WMaxLimPct_WinTms", "uint16", 1),
    Point("WMaxLimPct_RvrtTms", "uint16", 1),
    Point("WMaxLimPct_RmpTms", "uint16", 1),
    Point("WMaxLim_Ena", "enum16", 1),
    Point("OutPFSet", "int16", 1),
    Point("OutPFSet_WinTms", "uint16", 1),
    Point("OutPFSet_RvrtTms", "uint16", 1),
    Point("OutPFSet_RmpTms", "uint16", 1),
    Point("OutPFSet_Ena", "enum16", 1),
    Point("VArWMaxPct", "int16", 1),
    Point("VArMaxPct", "int16", 1),
    Point("VArAvalPct", "int16", 1),
    Point("VArPct_WinTms", "uint16", 1),
    Point("VArPct_RvrtTms", "uint16", 1),
    Point("VArPct_RmpTms", "uint16", 1),
    Point("VArPct_Mod", "enum16", 1),
    Point("VArPct_Ena", "enum16", 1),
    Point("WMaxLimPct_SF", "sunssf", 1),
    Point("OutPFSet_SF", "sunssf", 1),
    Point("VArPct_SF", "sunssf", 1),
)
"""Model 123: Immediate Controls, after its ID and L registers."""

METER_203_POINTS: Final[tuple[Point, ...]] = (
    Point("A", "int16", 1),
    Point("AphA", "int16", 1),
    Point("AphB", "int16", 1),
    Point("AphC", "int16", 1),
    Point("A_SF", "sunssf", 1),
    Point("PhV", "int16", 1),
    Point("PhVphA", "int16", 1),
    Point("PhVphB", "int16", 1),
    Point("PhVphC", "int16", 1),
    Point("PPV", "int16", 1),
    Point("PhVphAB", "int16", 1),
    Point("PhVphBC", "int16", 1),
    Point("PhVphCA", "int16", 1),
    Point("V_SF", "sunssf", 1),
    Point("Hz", "int16", 1),
    Point("Hz_SF", "sunssf", 1),
    Point("W", "int16", 1),
    Point("WphA", "int16", 1),
    Point("WphB", "int16", 1),
    Point("WphC", "int16", 1),
    Point("W_SF", "sunssf", 1),
    Point("VA", "int16", 1),
    Point("VAphA", "int16", 1),
    Point("VAphB", "int16", 1),
    Point("VAphC", "int16", 1),
    Point("VA_SF", "sunssf", 1),
    Point("VAR", "int16", 1),
    Point("VARphA", "int16", 1),
    Point("VARphB", "int16", 1),
    Point("VARphC", "int16", 1),
    Point("VAR_SF", "sunssf", 1),
    Point("PF", "int16", 1),
    Point("PFphA", "int16", 1),
    Point("PFphB", "int16", 1),
    Point("PFphC", "int16", 1),
    Point("PF_SF", "sunssf", 1),
    Point("TotWhExp", "acc32", 2),
    Point("TotWhExpPhA", "acc32", 2),
    Point("TotWhExpPhB", "acc32", 2),
    Point("TotWhExpPhC", "acc32", 2),
    Point("TotWhImp", "acc32", 2),
    Point("TotWhImpPhA", "acc32", 2),
    Point("TotWhImpPhB", "acc32", 2),
    Point("TotWhImpPhC", "acc32", 2),
    Point("TotWh_SF", "sunssf", 1),
    Point("TotVAhExp", "acc32", 2),
    Point("TotVAhExpPhA", "acc32", 2),
    Point("TotVAhExpPhB", "acc32", 2),
    Point("TotVAhExpPhC", "acc32", 2),
    Point("TotVAhImp", "acc32", 2),
    Point("TotVAhImpPhA", "acc32", 2),
    Point("TotVAhImpPhB", "acc32", 2),
    Point("TotVAhImpPhC", "acc32", 2),
    Point("TotVAh_SF", "sunssf", 1),
    Point("TotVArhImpQ1", "acc32", 2),
    Point("TotVArhImpQ1PhA", "acc32", 2),
    Point("TotVArhImpQ1PhB", "acc32", 2),
    Point("TotVArhImpQ1PhC", "acc32", 2),
    Point("TotVArhImpQ2", "acc32", 2),
    Point("TotVArhImpQ2PhA", "acc32", 2),
    Point("TotVArhImpQ2PhB", "acc32", 2),
    Point("TotVArhImpQ2PhC", "acc32", 2),
    Point("TotVArhExpQ3", "acc32", 2),
    Point("TotVArhExpQ3PhA", "acc32", 2),
    Point("TotVArhExpQ3PhB", "acc32", 2),
    Point("TotVArhExpQ3PhC", "acc32", 2),
    Point("TotVArhExpQ4", "acc32", 2),
    Point("TotVArhExpQ4PhA", "acc32", 2),
    Point("TotVArhExpQ4PhB", "acc32", 2),
    Point("TotVArhExpQ4PhC", "acc32", 2),
    Point("TotVArh_SF", "sunssf", 1),
    Point("Evt", "bitfield32", 2),
)
"""Model 203: wye-connect three phase (abcn) meter, after its ID and L registers."""
