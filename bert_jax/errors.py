"""The one exception type for mistakes the user can fix: bad config, data or checkpoint."""


class UserError(Exception):
    """A user-facing mistake; its message is one sentence naming the key or path and what to do.

    `main.py` prints it without a traceback and exits non-zero.
    """
