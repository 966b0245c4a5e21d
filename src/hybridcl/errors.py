"""The root of every error that is the user's to fix (bad config, data, model, missing WordNet).

The CLI prints these as one line; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error whose message says what is wrong and how to fix it."""
