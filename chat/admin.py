from django.contrib import admin
from django.template.loader import render_to_string

from chat import services
from chat.models import ChatSession, Message, MessageStatus, ProfileSummary, Role
from chat.streams import reply_stream_path
from core.pagination import BoundedCountPaginator
from jobs.admin.widgets import SteersRunsAdmin, apply_each
from jobs.public import TriggeredBy


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "role", "status", "content", "citations")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at", "id")

    def has_add_permission(self, request, obj=None):
        return False


class FailedReplyFilter(admin.SimpleListFilter):
    title = "failed replies"
    parameter_name = "failed_replies"

    def lookups(self, request, model_admin):
        return (("yes", "With a failed reply"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(messages__role=Role.ASSISTANT, messages__status=MessageStatus.FAILED).distinct()
        return queryset


def _retry_replies(modeladmin, request, failed_replies):
    apply_each(modeladmin, request, failed_replies,
               lambda reply: services.reply_retry(message=reply, triggered_by=TriggeredBy.ADMIN),
               done="Replies retried")


@admin.action(description="Retry failed replies", permissions=["steer"])
def retry_session_replies(modeladmin, request, queryset):
    _retry_replies(modeladmin, request, Message.objects.filter(
        session__in=queryset, role=Role.ASSISTANT, status=MessageStatus.FAILED).select_related("reply_to__run"))


@admin.register(ChatSession)
class ChatSessionAdmin(SteersRunsAdmin, admin.ModelAdmin):
    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_display = ("__str__", "owner", "created_at", "summarized_at")
    list_filter = (FailedReplyFilter, "created_at")
    search_fields = ("title", "owner__username")
    inlines = (MessageInline,)
    actions = (retry_session_replies,)
    readonly_fields = ("summary", "summarized_at")


@admin.action(description="Retry reply", permissions=["steer"])
def retry_reply(modeladmin, request, queryset):
    _retry_replies(modeladmin, request, queryset.filter(role=Role.ASSISTANT, status=MessageStatus.FAILED))


@admin.register(Message)
class MessageAdmin(SteersRunsAdmin, admin.ModelAdmin):
    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_display = ("id", "session", "role", "status", "short_content", "created_at")
    list_filter = ("status", "role")
    search_fields = ("content", "session__title")
    actions = (retry_reply,)
    list_select_related = ("session",)
    # The reply beside the question it answers, above the fold.
    fields = ("session", "role", "content", "reply_live", "status", "reply_to", "citations", "prompt_tokens",
              "completion_tokens", "run", "created_at")
    readonly_fields = ("reply_live", "run", "prompt_tokens", "completion_tokens")

    class Media:
        js = ("chat/reply_live.js",)
        css = {"all": ("chat/admin.css",)}

    @admin.display(description="content")
    def short_content(self, message):
        return message.content[:80]

    @admin.display(description="reply")
    def reply_live(self, message):
        """A user message's reply: as saved, or followed as it is written (chat/static/chat/reply_live.js)."""
        if message.pk is None or message.role != Role.USER or message.run_id is None:
            return "—"
        reply = Message.objects.filter(reply_to=message, role=Role.ASSISTANT).first()
        finished = reply is not None and message.run.is_finished
        return render_to_string("admin/chat/reply_live.html", {
            "stream_url": reply_stream_path(message.pk), "finished": int(finished),
            "state": reply.status if finished else "waiting for the reply", "content": reply.content if reply else ""})


@admin.register(ProfileSummary)
class ProfileSummaryAdmin(admin.ModelAdmin):
    list_display = ("user", "summarized_at")
