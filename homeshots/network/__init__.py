"""The HTTP side: guarded URLs, one careful request, image downloads, what a rate limiter must do."""
