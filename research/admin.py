"""Digests as a reader wants them (content, citations, what was covered and what was not), and the
findings they were composed from."""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

from core.pagination import BoundedCountPaginator
from jobs.admin.widgets import LIVE_MEDIA, lines, link, preformatted, run_link, run_live_cell
from research.models import Digest, Finding
from research.services import closeness_described


class CitedTextAdmin(admin.ModelAdmin):
    """Read-only pages of a text with [n] citations (digests and findings)."""
    paginator = BoundedCountPaginator
    show_full_result_count = False

    citations_name_documents = True

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="content")
    def content_pre(self, obj):
        return preformatted(obj.content)

    @admin.display(description="citations")
    def citations_table(self, obj):
        return _citations_table(obj.citations, with_document=self.citations_name_documents)


def _document_link(document_id, title: str):
    if not document_id:
        return conditional_escape(title)
    return link(reverse("admin:documents_document_change", args=[document_id]), title)


def _citations_table(citations: list[dict], *, with_document: bool):
    if not citations:
        return "—"
    rows = ((c.get("ref"), _document_link(c.get("document_id"), c.get("title", "")) if with_document else "",
             c.get("page") or "—", c.get("chunk_index"), c.get("quote", "")) for c in citations)
    return render_to_string("admin/research/citations.html", {"rows": rows})


@admin.register(Digest)
class DigestAdmin(CitedTextAdmin):
    list_display = ("topic", "job", "owner", "covered", "partial", "created_at")
    list_filter = ("partial", "method", "created_at")
    search_fields = ("topic", "content")
    list_select_related = ("job", "owner")
    fields = ("topic", "questions_list", "job", "owner", "run_tree", "method", "partial", "created_at", "content_pre",
              "citations_table", "documents_covered", "unread_list", "not_relevant_list")
    readonly_fields = fields

    @property
    def media(self):
        return super().media + LIVE_MEDIA

    @admin.display(description="questions")
    def questions_list(self, digest):
        return lines(digest.questions) if digest.questions else "—"

    @admin.display(description="documents")
    def covered(self, digest):
        return digest.documents.count()

    @admin.display(description="run")
    def run_tree(self, digest):
        """The composing run, with its live status; its page shows the children."""
        return format_html("{} {}", run_link(digest.run), run_live_cell(digest.run)) if digest.run else "—"

    @admin.display(description="documents covered")
    def documents_covered(self, digest):
        # Each link comes rendered (and escaped) from its template.
        return mark_safe(", ".join(_document_link(d.pk, d.title) for d in digest.documents.all())) or "—"

    @admin.display(description="could not read")
    def unread_list(self, digest):
        return lines(format_html("{}: {}", _document_link(u.get("document_id"), u.get("title", "")), u.get("error", ""))
                     for u in digest.unread) if digest.unread else "—"

    @admin.display(description="not relevant enough")
    def not_relevant_list(self, digest):
        return lines(format_html("{}: {}", _document_link(n.get("document_id"), n.get("title", "")),
                                 closeness_described(n.get("closeness")))
                     for n in digest.not_relevant) if digest.not_relevant else "—"


@admin.register(Finding)
class FindingAdmin(CitedTextAdmin):
    citations_name_documents = False  # one document: the finding's
    list_display = ("document", "method", "created_at")
    list_filter = ("method", "created_at")
    list_select_related = ("document",)
    search_fields = ("content",)
    fields = ("document", "method", "document_version", "question_key", "run_page", "created_at",
              "content_pre", "citations_table")
    readonly_fields = fields

    @admin.display(description="run")
    def run_page(self, finding):
        return run_link(finding.run)

