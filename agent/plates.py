"""Plate text: the one normal form, OCR look-alikes and edit distance.

The reader's parser, the access rules and the decider all compare plates through these functions,
so a plate the reader returns and a plate written in a rule can never disagree on spelling.
"""

from __future__ import annotations

import re

# OCR look-alikes folded onto one character: O/0, I/L/1, B/8, S/5, Z/2
LOOKALIKES = {"O": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2"}
MAX_CHARS = 16  # longest plate text a rule may hold

_FOLD = str.maketrans(LOOKALIKES)
_SEPARATORS = re.compile(r"[\s\-_.·]+")  # what people write between plate characters
_PLATE = re.compile(rf"[A-Z0-9]{{1,{MAX_CHARS}}}")


def normalize(text: str) -> str:
    """Upper case, letters and digits only: ``" ab-123 cd "`` -> ``"AB123CD"``.

    Applied to everything the reader answers (e.g. ``nhk552``) and to every plate compared.
    """
    return "".join(ch for ch in text.upper() if ch.isalnum())


def canonical(text: str) -> str:
    """``normalize`` plus OCR look-alikes folded onto one character (O->0, I/L->1, B->8, ...)."""
    return normalize(text).translate(_FOLD)


def is_plate(written: str) -> bool:
    """Whether a plate as written in a rule is usable: 1-16 letters or digits (A-Z, 0-9), with
    only spaces, dashes, dots or underscores between them."""
    return _PLATE.fullmatch(_SEPARATORS.sub("", written).upper()) is not None


def distance(a: str, b: str, limit: int = 99) -> int:
    """Levenshtein distance; stops early and returns ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


__all__ = ["LOOKALIKES", "MAX_CHARS", "canonical", "distance", "is_plate", "normalize"]
