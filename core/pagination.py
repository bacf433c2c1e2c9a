"""Pages of a list that cost the same on the first page of ten rows and deep in a table of millions.

Every list answers `count`, `next`, `previous` and `results`. Two things make that cheap at any size:

- `count` is core.counts' bounded count (exact up to COUNT_EXACT_UP_TO rows, PostgreSQL's estimate
  above; the admin's changelists count the same way), so no page counts a large table row by row.
- `next` and `previous` are cursor links (`?cursor=…`, a position in the list's order): a page
  reached by following them reads its rows off the order's index from that position, however deep.
  `?page=N` still jumps to a page near the start; past PAGE_NUMBER_MAX_OFFSET rows it is refused
  (400, saying to follow `next`), because an offset reads and discards every row before it.
"""

from __future__ import annotations

from math import ceil

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import InvalidPage, Paginator
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import remove_query_param

from core.counts import COUNT_EXACT_UP_TO, count_bounded

# An offset reads every row before it: 10,000 of them still answer in milliseconds off an index.
PAGE_NUMBER_MAX_OFFSET = 10_000


class BoundedCountPaginator(Paginator):
    """The admin's changelists' paginator: count_bounded's count, and page links that stop at the
    pages within PAGE_NUMBER_MAX_OFFSET rows (filters and search narrow a large list instead)."""

    @cached_property
    def count(self) -> int:
        return count_bounded(self.object_list)

    @cached_property
    def num_pages(self) -> int:
        if self.count == 0 and not self.allow_empty_first_page:
            return 0
        every = ceil(max(1, self.count - self.orphans) / self.per_page)
        return min(every, PAGE_NUMBER_MAX_OFFSET // self.per_page + 1)


class _Cursor(CursorPagination):
    """DRF's cursor pagination in the list's own order (its queryset's, else its model's)."""

    page_size = api_settings.PAGE_SIZE

    def get_ordering(self, request, queryset, view):
        # Ties in the first field (two rows created in the same microsecond) are DRF's offsets' job.
        return tuple(queryset.query.order_by or queryset.model._meta.ordering or ("-pk",))

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and "\x00" in cursor.position:
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, ValueError, OverflowError) as error:
            # A position that is no value of the ordering field (a hand-made cursor).
            raise NotFound(self.invalid_cursor_message) from error


class ListPagination(PageNumberPagination):
    """`?page=N` near the start, `?cursor=…` anywhere; both answer count, next, previous, results."""

    cursor_query_param = _Cursor.cursor_query_param

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.count = count_bounded(queryset)
        self.cursor = _Cursor()
        self.numbered = False
        if self.cursor_query_param not in request.query_params:
            self._page_number_check(request)
            if self.page_query_param in request.query_params:
                return self._page_numbered(queryset, request, view)
        return self.cursor.paginate_queryset(queryset, request, view)

    def _page_number_check(self, request) -> None:
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return
        try:
            number = int(raw)
        except ValueError:
            raise NotFound(self.invalid_page_message.format(page_number=raw, message="That page number is not an integer"))
        if (number - 1) * self.page_size >= PAGE_NUMBER_MAX_OFFSET:
            raise ValidationError({self.page_query_param: [
                f"Pages by number reach the first {PAGE_NUMBER_MAX_OFFSET:,} rows; "
                f"follow `next` (a cursor) to go further."]})

    def _page_numbered(self, queryset, request, view):
        """A page by number, its next and previous links cursors from its last and first rows."""
        ordering = self.cursor.get_ordering(request, queryset, view)
        queryset = queryset.order_by(*ordering)
        number = request.query_params.get(self.page_query_param)
        paginator = Paginator(queryset, self.page_size)
        paginator.count = self.count
        if number in self.last_page_strings:
            number = paginator.num_pages
            if (number - 1) * self.page_size >= PAGE_NUMBER_MAX_OFFSET:
                raise ValidationError({self.page_query_param: [
                    "The last page is past the pages reached by number; follow `next` (a cursor)."]})
        try:
            page = paginator.page(number)
        except InvalidPage as error:
            raise NotFound(self.invalid_page_message.format(page_number=number, message=str(error)))
        rows = list(page)
        self.numbered = True
        cursor = self.cursor
        cursor.request, cursor.page_size, cursor.ordering = request, self.page_size, ordering
        cursor.base_url = request.build_absolute_uri()
        cursor.page, cursor.cursor = rows, None
        cursor.has_next, cursor.has_previous = page.has_next(), page.has_previous()
        if rows:
            cursor.next_position = cursor._get_position_from_instance(rows[-1], ordering)
            cursor.previous_position = cursor._get_position_from_instance(rows[0], ordering)
        return rows

    def get_paginated_response(self, data):
        return Response({"count": self.count, "next": self._link(reverse=False),
                         "previous": self._link(reverse=True), "results": data})

    def _link(self, *, reverse: bool) -> str | None:
        cursor = self.cursor
        if not self.numbered:
            return cursor.get_previous_link() if reverse else cursor.get_next_link()
        # A page by number: the cursor starts past its last row (or before its first).
        if not (cursor.has_previous if reverse else cursor.has_next):
            return None
        position = cursor.previous_position if reverse else cursor.next_position
        return remove_query_param(cursor.encode_cursor(Cursor(offset=0, reverse=reverse, position=position)),
                                  self.page_query_param)

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        described["properties"]["count"]["description"] = (
            f"Exact up to {COUNT_EXACT_UP_TO:,} rows, PostgreSQL's estimate above.")
        described["properties"]["next"]["example"] = "http://api.example.org/accounts/?cursor=cD0yMDI2"
        described["properties"]["previous"]["example"] = "http://api.example.org/accounts/?cursor=cj0xJnA9MjAyNg=="
        return described

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        parameters[0]["description"] = (f"A page number, for pages within the first {PAGE_NUMBER_MAX_OFFSET:,} "
                                        f"rows; follow `next` to go further.")
        return [*parameters, *_Cursor().get_schema_operation_parameters(view)]
