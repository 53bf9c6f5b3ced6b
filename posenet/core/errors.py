"""The one exception type that the CLI turns into a single clear line."""


class PosenetError(Exception):
    """A user-facing error: bad input, missing file, broken contract.

    The message must name the file (or argument) and the problem in one line;
    the CLI prints it as `posenet: error: <message>` and exits with status 2.
    """
