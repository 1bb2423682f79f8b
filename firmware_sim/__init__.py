"""Simulated device firmware for the resilience controller: the site it controls, in software.

`plant` is the physics and the referee (pure, stepped by hand or by a ticker),
`devices` the register banks of each device over the plant, `server` the Modbus
TCP servers and `SimSite` that runs them, `control` the HTTP injection API, and
`python -m firmware_sim` the whole thing as a process. Depends on `resilience`
for the register map, the enums and the site file; `resilience` never imports it.
"""
