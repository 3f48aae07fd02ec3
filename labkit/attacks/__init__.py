"""Attacks return data (or a loss function) and the indices they touched."""
