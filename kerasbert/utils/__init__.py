"""Helpers every floor of kerasbert may use: argument checks, file writing."""
