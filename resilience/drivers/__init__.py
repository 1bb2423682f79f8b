"""Device drivers, one module per family, and the register maps they share with firmware_sim.

Import drivers from their modules (or `resilience.drivers.registry`); this
package imports nothing itself, so `firmware_sim` can use
`resilience.drivers.registers` without pulling in the transport.
"""
