"""The roof: the CLI and what operators run (session, embedded mode, display, report, metrics, Flower)."""
