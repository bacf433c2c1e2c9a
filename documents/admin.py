from django.contrib import admin
from django.utils.text import Truncator

from core.pagination import BoundedCountPaginator
from documents import services
from documents.models import Chunk, Document
from jobs.admin.widgets import (
    ERROR_EXCERPT_CHARS,
    LIVE_MEDIA,
    SteersRunsAdmin,
    apply_each,
    run_live_cell,
    time_in_a_list,
)
from jobs.public import TriggeredBy


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ("chunk_index", "page", "char_start", "char_end", "excerpt")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="text")
    def excerpt(self, chunk):
        return chunk.text[:200]


@admin.action(description="Reprocess selected documents", permissions=["steer"])
def reprocess(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset,
               lambda document: services.document_reprocess(document=document, triggered_by=TriggeredBy.ADMIN),
               done="Documents queued for reprocessing")


@admin.register(Document)
class DocumentAdmin(SteersRunsAdmin, admin.ModelAdmin):
    steered_model = Document  # reprocessing another's document takes the permission to change documents
    paginator = BoundedCountPaginator
    show_full_result_count = False
    # Why a document failed is in its row: an operator looking for failures reads it without a click.
    list_display = ("title", "status", "progress", "error_excerpt", "chunk_count", "format", "owner", "uploaded")
    list_filter = ("status", "format", "created_at")
    search_fields = ("title", "original_name", "=sha256", "=id")
    list_select_related = ("owner", "run")
    actions = (reprocess,)
    inlines = (ChunkInline,)
    readonly_fields = [f.name for f in Document._meta.fields] + ["progress"]

    def has_add_permission(self, request):
        return False

    @property
    def media(self):
        return super().media + LIVE_MEDIA

    uploaded = time_in_a_list("created_at", "uploaded")

    @admin.display(description="error")
    def error_excerpt(self, document):
        return Truncator(document.error).chars(ERROR_EXCERPT_CHARS)

    @admin.display(description="ingestion run")
    def progress(self, document):
        return run_live_cell(document.run)

    def delete_model(self, request, obj):
        services.document_delete(document=obj)

    def delete_queryset(self, request, queryset):
        for document in queryset:
            services.document_delete(document=document)
