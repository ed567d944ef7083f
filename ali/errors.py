"""The project's one error type: a message a user can act on, printed without a traceback."""


class AliError(Exception):
    """Bad input or an unusable file. The CLI prints `error: <message>` and exits with status 2."""
