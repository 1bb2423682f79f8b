"""Relay panel with per-channel metering -> `PanelReading`, and its relays.

Units: channel power [W], supply voltage [V] (register in V x10, 0 = dead).
Only the first `channels` channels (from the site config) are reported and
switched; the panel map always has 16. One read of `READ_COUNT` registers per
cycle; `set_relays` writes every configured channel's command in one request.
"""

from __future__ import annotations

from typing import Final, Self

from resilience.config import Device
from resilience.devices import PanelReading
from resilience.drivers import registers
from resilience.drivers.base import RegisterDriver
from resilience.transport.modbus import RegisterTransport

__all__ = ["LoadPanel"]

_R = registers.LoadPanel


class LoadPanel(RegisterDriver):
    """Implements `resilience.devices.LoadRelays` for channels 0..`channels`-1.

    `rating_w` [W], when given, is the panel's rating: no channel can carry more,
    so a channel reading more than twice it is not believed.
    """

    READ_COUNT: Final = _R.READ_COUNT

    def __init__(
        self,
        transport: RegisterTransport,
        unit_id: int,
        *,
        name: str,
        channels: int = _R.CHANNELS,
        rating_w: float | None = None,
    ) -> None:
        super().__init__(transport, unit_id, name=name)
        if not 1 <= channels <= _R.CHANNELS:
            raise ValueError(f"{name}: {channels} channels (a panel has 1..{_R.CHANNELS})")
        self.channels = channels
        self.rating_w = rating_w

    @classmethod
    def from_config(cls, name: str, device: Device, transport: RegisterTransport) -> Self:
        return cls(
            transport,
            device.unit_id,
            name=name,
            channels=device.channels,
            rating_w=device.rating_w,
        )

    async def read(self) -> PanelReading:
        raw = await self._read(_R.RELAY_COMMAND, _R.READ_COUNT)  # the map starts at 0
        return self._decoded(raw, self._decode)

    def _decode(self, raw: list[int]) -> PanelReading:
        n = self.channels
        command = tuple(
            [
                self._flag(f"RELAY_COMMAND[{i}]", _R.RELAY_COMMAND + i, raw[_R.RELAY_COMMAND + i])
                for i in range(n)
            ]
        )
        feedback = tuple(
            [
                self._flag(
                    f"RELAY_FEEDBACK[{i}]", _R.RELAY_FEEDBACK + i, raw[_R.RELAY_FEEDBACK + i]
                )
                for i in range(n)
            ]
        )
        power: list[float] = []
        for i in range(n):
            address = _R.CHANNEL_POWER + i
            watts = float(raw[address])
            if self.rating_w is not None:
                self._check_power(f"CHANNEL_POWER[{i}]", address, watts, self.rating_w)
            power.append(watts)
        supply = self._check_voltage(
            "SUPPLY_VOLTAGE", _R.SUPPLY_VOLTAGE, raw[_R.SUPPLY_VOLTAGE] / 10
        )
        return PanelReading(
            relay_feedback=feedback,
            relay_command=command,
            channel_power_w=tuple(power),
            supply_voltage_v=supply,
            operations=raw[_R.OPERATIONS],
        )

    async def set_relays(self, on: tuple[bool, ...]) -> None:
        """Command every configured channel at once (True = relay closed, load on)."""
        if len(on) != self.channels:
            raise ValueError(
                f"{self.name}: {len(on)} relay states for a panel of {self.channels} channels"
            )
        await self._write(_R.RELAY_COMMAND, [1 if state else 0 for state in on])
