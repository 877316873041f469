"""Traceability codes as a code printer makes them (QB/T 5279-2018 6.2: enterprise code of
Annex A + a random in-house code of at most 20 characters), and the ways a scan goes wrong."""

from __future__ import annotations

import random

__all__ = ["CHARSET", "CodeGen"]

CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class CodeGen:
    """Unique codes for one enterprise; ``foreign`` and ``misread`` make the bad ones."""

    def __init__(self, rng: random.Random, enterprise: str, length: int = 12) -> None:
        self.rng = rng
        self.enterprise = enterprise
        self.length = length
        self._issued: set[str] = set()

    def new(self) -> str:
        while True:
            code = self.enterprise + "".join(self.rng.choices(CHARSET, k=self.length))
            if code not in self._issued:
                self._issued.add(code)
                return code

    def foreign(self) -> str:
        """A code that is invalid here: another producer's, one not in Annex A, or too long."""
        kind = self.rng.randrange(3)
        tail = "".join(self.rng.choices(CHARSET, k=self.length))
        if kind == 0:
            return "8063" + tail  # another enterprise of Annex A
        if kind == 1:
            return "8199" + tail  # not in Annex A
        return self.enterprise + tail + "".join(self.rng.choices(CHARSET, k=12))  # > 20

    def misread(self, code: str) -> str:
        """A bad decode of ``code``: truncated, or with a character outside the charset."""
        if self.rng.random() < 0.5:
            return code[: 4 + self.rng.randrange(1, 5)]
        i = self.rng.randrange(4, len(code))
        # not '?': in a resolver URL it would cut the code into a shorter one that may be valid
        return code[:i] + self.rng.choice("#*~!") + code[i + 1 :]
