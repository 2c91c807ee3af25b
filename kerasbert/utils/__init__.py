"""Helpers every floor of kerasbert may use: argument checks, atomic file
writing, the names of a run directory's entries that lower floors read."""
