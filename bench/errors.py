"""Errors the user can act on: they carry the fix and map to exit code 2."""


class UserError(Exception):
    """A problem with the input or the host that the user must fix; exit code 2."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  fix: {self.fix}" if self.fix else text


class RecordsNotKept(BaseException):
    """The results folder takes no more records (its disk full, say): the run stops at once,
    since every instance after would be lost. Not an Exception, so that no handler of one
    instance's failure takes it for its own."""


class RuntimeFailure(Exception):
    """One instance failed (launch error, crash, timeout); its cell is recorded as failed."""
