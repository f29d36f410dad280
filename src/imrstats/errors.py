"""Exceptions that carry a message meant for a person, not a traceback."""


class InputError(ValueError):
    """An input file or table breaks a rule; the message names file, row, column, value and rule."""


class AnalysisError(ValueError):
    """An analysis cannot give a trustworthy number on this data (degenerate, sparse, not converged)."""
