"""The one exception type for mistakes a user can make (bad file, bad flag, bad JSON)."""


class DdjaxError(Exception):
    """A user-caused error. Its message names the thing at fault and the fix.

    The CLI prints it as one line on stderr and exits with code 2. Programming
    errors use ordinary exceptions and stay loud.
    """
