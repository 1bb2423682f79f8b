"""Developer tools: scripts run by hand (or by the tests) against the simulated site."""
