"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input: says what is wrong, where, and what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class PluginError(UserError):
    """A registered object's own failure (a bug, or an input it does not handle), not a problem the user's
    options describe: one line all the same, but never mistaken for "this explainer does not apply"."""


# Lines that only say where an exception passed through (Keras, tf.function) or what it was called with.
_WRAPPER_LINES = ("Exception encountered when calling", "in user code:", "Arguments received by", "•", "File ")


def reason(exc: BaseException) -> str:
    """The line of an exception's message that says what went wrong: the first that does not only name a
    wrapper (Keras' "Exception encountered when calling ...", its list of arguments, a tf.function's frames)."""
    import re

    # Keras bolds parts of its messages with terminal codes; TensorFlow prefixes the op's internal name.
    text = re.sub(r"\x1b\[[0-9;]*m|\{\{function_node [^}]*\}\}\s*", "", str(exc))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if not line.startswith(_WRAPPER_LINES)), lines[-1])


def closest(name: str, candidates, cutoff: float = 0.6) -> str | None:
    """The candidate most like ``name`` (difflib's ratio at least ``cutoff``), or None."""
    import difflib

    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name: str, candidates, spell=repr) -> str:
    """``"did you mean 'saliency'? "`` for the candidate closest to a misspelt ``name`` (written by ``spell``),
    ending in a space so that a list of the valid names can follow; "" when none is close."""
    found = closest(name, candidates)
    return f"did you mean {spell(found)}? " if found is not None else ""
