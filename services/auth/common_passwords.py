"""Common and breached passwords, which Register refuses (NIST SP 800-63B, section 3.1.1.2).

The list is the "passwords" frequency list of zxcvbn (PyPI ``zxcvbn``, MIT,
https://github.com/dwolfhub/zxcvbn-python): the 30,000 most frequent passwords
of Xato's corpus of ten million leaked passwords, read from the installed
package at first use, so an upgrade of the package refreshes it. Entries are
lower-case; a password is compared case-insensitively, and once more without
its spaces, so "Pass Word 1234" counts as "password1234".
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["is_common_password", "load_common_passwords"]


@functools.cache
def load_common_passwords() -> frozenset[str]:
    """The list, loaded once per process (the server loads it at start, off the first call)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(entry.casefold() for entry in FREQUENCY_LISTS["passwords"])


def is_common_password(password: str) -> bool:
    """Whether password, ignoring case and spaces, is on the list."""
    folded = unicodedata.normalize("NFKC", password).casefold()
    common = load_common_passwords()
    return folded in common or "".join(folded.split()) in common
