"""Drills: scenarios, reports and the survival analysis (no firmware_sim import here).

The runner that drives the simulated plant lives in `firmware_sim.drill`, because
`resilience` never imports `firmware_sim`; `resilience drill` starts it as a child.
"""
