"""Offset pagination: a pure state machine, and the loop that drives it to an end.

Every listing ends: a server that serves another offset than the one asked for, a page
that brings nothing new (it ignores ``offset``), or more than :data:`MAX_LISTED` items
is an error, not a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from odyssey_data.errors import ApiResponseError

__all__ = ["MAX_LISTED", "OffsetPaginator", "paginate"]

_Item = TypeVar("_Item")

#: The most entries a listing goes through (its ids are kept to skip duplicates).
MAX_LISTED = 1_000_000


@dataclass(slots=True)
class OffsetPaginator:
    """Offset pagination as a pure state machine (no I/O): the client drives it.

    The server may cap ``limit`` below what was asked, so the next offset advances by
    the number of items actually returned, until ``total`` is reached, an empty page
    arrives, or the caller's ``max_items`` is reached.
    """

    page_size: int = 100
    max_items: int | None = None
    offset: int = 0
    seen: int = 0
    done: bool = False

    def next_params(self) -> dict[str, int]:
        """Query parameters of the next page to request."""
        limit = self.page_size
        if self.max_items is not None:
            limit = max(1, min(limit, self.max_items - self.seen))
        return {"limit": limit, "offset": self.offset}

    def advance(self, returned: int, total: int) -> None:
        """Record a page of ``returned`` items out of ``total``."""
        self.offset += returned
        self.seen += returned
        if (
            returned == 0
            or self.offset >= total
            or (self.max_items is not None and self.seen >= self.max_items)
        ):
            self.done = True


def paginate(
    fetch: Callable[[int, int], tuple[Sequence[_Item], int, int | None]],
    key: Callable[[_Item], str],
    page_size: int,
    limit: int | None,
) -> Iterator[_Item]:
    """Drive :class:`OffsetPaginator` over ``fetch(limit, offset) -> (items, total,
    offset served)``.

    Every listing ends: a server that serves another offset than the one asked for,
    or a page that brings nothing new (it ignores ``offset``), or more than
    :data:`MAX_LISTED` items, is an error, not a loop.

    Raises:
        ApiResponseError: the server pages in a way that would never end.
    """
    pager = OffsetPaginator(page_size=page_size, max_items=limit)
    seen: set[str] = set()
    while not pager.done:
        params = pager.next_params()
        items, total, served = fetch(params["limit"], params["offset"])
        where = f"the page at offset={params['offset']}"
        if served is not None and served != params["offset"]:
            raise ApiResponseError(
                f"listing: {where} says it is offset={served}: the API does not page "
                "as asked; stopping (report it to the API's operators)"
            )
        pager.advance(len(items), total)
        new = 0
        for item in items:
            # New items arriving mid-listing shift offsets: never yield one twice.
            if key(item) not in seen:
                seen.add(key(item))
                new += 1
                yield item
        if items and not new:
            raise ApiResponseError(
                f"listing: {where} brings nothing new (the API repeats a page, as if it "
                "ignored offset); stopping"
            )
        if len(seen) > MAX_LISTED:
            raise ApiResponseError(
                f"listing: more than {MAX_LISTED} entries; pass --limit (or filters) to "
                "export part of them"
            )
