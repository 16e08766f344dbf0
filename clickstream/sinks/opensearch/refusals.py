"""Which refusals are about the index or the cluster, not the events: they stop `consume`.

An event OpenSearch rejects (a value its field cannot take) is dead-lettered, and the
others of its batch are indexed. But an illegal or closed index, a write block, missing
permissions, a missing index when auto-creation is off, or a mapping that rejects every
document of a batch the same way say nothing about the events: dead-lettering them would
empty the backlog into the dead-letter topic. These raise `OpenSearchRefused` (a
`SinkRefused`): the consumer stops, commits nothing for the batch, and the events wait in
Kafka until the store is fixed. Only documented OpenSearch error types and statuses are
read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    TransportError,
)

from clickstream.errors import OpenSearchForbidden, OpenSearchRefused

#: Item error types about the index or the cluster, with what to do about each.
INDEX_ERRORS: Mapping[str, str] = {
    "invalid_index_name_exception": "check opensearch.index_prefix",
    "index_closed_exception": "open the index (POST <index>/_open) or delete it",
    "cluster_block_exception": (
        "lift the block (e.g. index.blocks.write, or the read-only block a full disk sets)"
    ),
    "index_not_found_exception": (
        "indices are not created automatically: allow <prefix>-* in action.auto_create_index"
    ),
}
#: Item error types that mean "not allowed": credentials or permissions.
FORBIDDEN_ERRORS = frozenset({"security_exception"})
#: HTTP statuses that mean the same, unless the error's type says otherwise (a write block
#: answers 403 too).
FORBIDDEN_STATUSES = frozenset({401, 403})
FORBIDDEN_HINT = "check opensearch.username, opensearch.password and the user's permissions"
MAPPING_HINT = (
    "the index's mapping refuses these events: check the index template "
    "(`clickstream setup` installs ours) and the daily index's mapping"
)
#: A refusal's reason is cut to this length in the one-line error.
MAX_REASON = 300
#: Quoted values in a reason (`document with id 'x'`, `Preview of field's value: 'y'`): a
#: quote that opens a word, up to the next one that closes it (not the one in `field's`).
_QUOTED = re.compile(r"(?<![\w'])'.*?'(?!\w)")


class ItemRefusal(Protocol):
    """What is read of a rejected bulk item."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def kind(self) -> str: ...


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else f"{text[: MAX_REASON - 3]}..."


def _forbidden(kind: str, status: int) -> bool:
    return kind in FORBIDDEN_ERRORS or (status in FORBIDDEN_STATUSES and kind not in INDEX_ERRORS)


def shape(reason: str) -> str:
    """`reason` without the values it quotes, so that the same mapping error on different
    documents reads the same (field names, in brackets, stay)."""
    return _QUOTED.sub("'...'", reason)


def batch_refused(rejected: Sequence[ItemRefusal], documents: int) -> OpenSearchRefused | None:
    """The error to stop with if the items `rejected` of a batch of `documents` say the
    store, not the events, is at fault; None if they are the events' own (dead-letter them).
    """
    if not rejected:
        return None
    for item in rejected:
        if _forbidden(item.kind, item.status):
            count = sum(_forbidden(r.kind, r.status) for r in rejected)
            return OpenSearchForbidden(
                f"OpenSearch refused {count:,} of {documents:,} documents of a batch: HTTP "
                f"{item.status} {_one_line(item.reason)}; nothing committed or dead-lettered",
                hint=FORBIDDEN_HINT,
            )
        if item.kind in INDEX_ERRORS:
            count = sum(r.kind == item.kind for r in rejected)
            return OpenSearchRefused(
                f"OpenSearch refused {count:,} of {documents:,} documents of a batch with "
                f"{_one_line(item.reason)}; nothing committed or dead-lettered",
                hint=INDEX_ERRORS[item.kind],
            )
    first = rejected[0]
    if (
        documents >= 2
        and len(rejected) == documents
        and first.kind
        and all(r.kind == first.kind and shape(r.reason) == shape(first.reason) for r in rejected)
    ):
        return OpenSearchRefused(
            f"OpenSearch rejected all {documents:,} documents of a batch with "
            f"{_one_line(shape(first.reason))}; nothing committed or dead-lettered",
            hint=MAPPING_HINT,
        )
    return None


def request_refused(exc: TransportError) -> OpenSearchRefused:
    """Our error for a whole `_bulk` request OpenSearch refused (not 429 or 5xx)."""
    info = exc.info.get("error", exc.error) if isinstance(exc.info, dict) else exc.error
    kind = ""
    if isinstance(info, Mapping):
        kind = str(info.get("type", ""))
        info = f"{kind}: {info.get('reason')}"
    status = exc.status_code if isinstance(exc.status_code, int) else 0
    message = f"indexing a batch failed: HTTP {exc.status_code} {_one_line(str(info))}"
    if isinstance(exc, AuthenticationException | AuthorizationException) or _forbidden(
        kind, status
    ):
        return OpenSearchForbidden(message, hint=FORBIDDEN_HINT)
    if kind in INDEX_ERRORS:
        return OpenSearchRefused(message, hint=INDEX_ERRORS[kind])
    if status == 413:
        return OpenSearchRefused(message, hint="lower consumer.batch_size")
    return OpenSearchRefused(message)
