"""The controller's own OCPP central system (issue 12): stations connect to it.

- `csms.CentralSystem`: the WebSocket server, authentication, one session per station,
  and `driver(name, device)` (the `drivers.registry.StationDrivers` Protocol);
- `driver.OcppStationDriver`: a station as a `devices.BidirectionalCharger`;
- `sessions`: the `ocpp` library's ChargePoint per version (2.1, 2.0.1, 1.6), each version
  in its own module (`sessions_v21`...), imported only for a site with such a station;
- `state`: what is known of a station, and the pure decoding of its messages;
- `profiles`: the charging profiles and schedule updates sent (pure builders);
- `passwords`: the Basic Auth password hashes of the site file.
"""

from resilience.ocpp.csms import CentralSystem
from resilience.ocpp.driver import CommandNotTaken, OcppStationDriver, StationSilent
from resilience.ocpp.passwords import hash_password, verify_password

__all__ = [
    "CentralSystem",
    "CommandNotTaken",
    "OcppStationDriver",
    "StationSilent",
    "hash_password",
    "verify_password",
]
