"""Errors a user can act on: the CLI prints their message as one line, without a traceback."""


class FaceDancerError(Exception):
    """Base of every user-facing error."""


class ModelFileError(FaceDancerError):
    """A model file is missing, unreadable, not a model, or not the kind expected."""
