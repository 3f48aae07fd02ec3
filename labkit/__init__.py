"""labkit: the helper package behind the poisoning & backdoor lab's notebooks.

Imports run one way: core (config, data, models, train, triggers, pruning, metrics, ...) ← attacks and
defenses ← experiments ← the face (plots, widgets, cli, bench); tests/test_import_direction.py checks it.
"""
__version__ = "0.1.0"
