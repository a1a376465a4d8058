"""The seed's managers, kept by name, on Redis: O(1) operations per property, no file reloads."""
