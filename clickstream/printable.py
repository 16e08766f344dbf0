"""Text from events or servers, made safe to show on a terminal.

A leaf with no imports beyond the standard library: the terminal and the logs use it, and
`clickstream --help` should not pay for more.
"""

from __future__ import annotations

import re

#: Characters a terminal would act on instead of showing: C0 and C1 controls (escape
#: sequences start with ESC or CSI), DEL, and the bidirectional overrides that reorder text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every character a terminal would interpret shown as an escape instead
    (`\\x1b`, `\\u202e`): data from events or servers is made visible, never executed."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)
