"""Exceptions that carry a message meant for a person, not a traceback."""


class InputError(ValueError):
    """An input file or table breaks a rule; the message names file, row, column, value and rule."""


class AnalysisError(ValueError):
    """An analysis cannot give a trustworthy number on this data (degenerate, sparse, not converged)."""


class SettingsError(InputError):
    """A setting breaks the config schema or a rule; each problem names its key path, e.g.
    ``trial.imputations: must be >= 2, got 1``. ``problems`` holds (key path, message) pairs."""

    def __init__(self, problems, source: str | None = None):
        self.problems = [(str(key), str(text)) for key, text in problems]
        self.source = source
        lines = [f"{key}: {text}" for key, text in self.problems]
        head = f"{source}: " if source else ""
        if len(lines) == 1:
            message = head + lines[0]
        else:
            message = head + f"{len(lines)} settings problems:\n  " + "\n  ".join(lines)
        super().__init__(message)

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.problems]

    def __reduce__(self):
        return (type(self), (self.problems, self.source))
