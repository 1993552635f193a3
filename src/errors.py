"""Errors every layer raises, kept in a module that imports nothing of the project (src.data sits below it all)."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is expected."""
