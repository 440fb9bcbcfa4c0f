"""Errors that are the user's to fix: the CLI prints them as one line and exits 2, with no traceback."""


class UserError(Exception):
    """Bad input: a flag, a config file, a dataset, a model name. The message names the value and what is allowed."""


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class ModelSourceError(UserError):
    pass


class InvalidValue(ValueError):
    """A parse error whose message names the bad part of a value (e.g. one item of a list): shown as it is."""
