"""Defenses take a model or data and return a model, a filter or a score."""
