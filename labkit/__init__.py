"""labkit: the helper package behind the poisoning & backdoor lab's notebooks.

The core (data, models, train, triggers, metrics, attacks, defenses) never imports the
face (plots, widgets, cli); notebooks and the CLI compose them.
"""
__version__ = "0.1.0"
