"""The one exception type users see: a message that names the fix, never a traceback."""


class LabkitError(Exception):
    """A bad input or missing resource, with a one-line message that says what to do."""


class DataMissingError(LabkitError):
    """A dataset's files are not on disk (and labkit never downloads behind your back)."""


class DataCorruptError(DataMissingError):
    """A dataset's files are on disk but damaged (a checksum or the file format does not match)."""
