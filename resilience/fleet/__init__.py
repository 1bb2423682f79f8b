"""The city layer: a site reports itself to the city's emergency operations centre (EOC)
over an MQTT 5 broker (`[fleet]` in the site file; docs/architecture.md, "The city layer").

Imported only by a site with `[fleet]`: `resilience run` on any other site loads no MQTT
code (tests/test_run_imports.py).
"""
