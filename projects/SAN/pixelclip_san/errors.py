"""This project's one error type (``pixelclip_san`` imports nothing of ``pixelclip``: it runs in SAN's
environment too, where open_clip 2.16 cannot import ``pixelclip``)."""


class SanWeightsError(Exception):
    """A checkpoint or model that does not hold what it should; ``str(error)`` is
    ``"<what is wrong> — <what to do>"`` (or just the first part), one line, naming files and keys."""

    def __init__(self, what: str, action: str = ""):
        self.what = what
        self.action = action
        super().__init__(f"{what} — {action}" if action else what)
