"""The one exception type the CLI turns into a one-line error message and a non-zero exit."""


class PipelineError(Exception):
    """A problem the user can fix (bad input, impossible config, unwritable store).

    The message must be one plain sentence that says what is wrong and, where possible, what
    to do instead; the CLI prints it as ``error: <message>`` and exits with status 2.
    """
