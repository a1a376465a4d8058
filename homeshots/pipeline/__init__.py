"""One property, start to end, and the per-process resources it runs on."""
