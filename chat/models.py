from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Role(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete"
    FAILED = "failed"
    # Stopped by its user while it was being written: the text so far.
    STOPPED = "stopped"


class ChatSession(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, blank=True, default="")
    summary = models.TextField(blank=True, default="")
    summarized_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        # The owner's list, and the staff's list of every session, newest first.
        indexes = [models.Index(fields=["owner", "created_at"], name="chatsession_owner_created"),
                   models.Index(fields=["created_at"], name="chatsession_created")]

    def __str__(self) -> str:
        return self.title or f"Session {self.pk}"


class Message(models.Model):
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField()
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    citations = models.JSONField(default=list, blank=True)
    run = models.ForeignKey("jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            help_text="For a user message: the run writing its reply. For a reply: the run that wrote it.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="A reply: the prompt's tokens as the LLM server reported "
                                                          "them (null: it reported none).")
    completion_tokens = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="A reply: its tokens as the LLM server reported them.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One reply per user message: a redelivered or retried reply run replaces, never adds.
            models.UniqueConstraint(fields=["reply_to"], condition=Q(role="assistant"), name="one_reply_per_message"),
        ]
        indexes = [models.Index(fields=["session", "created_at"], name="message_session_created")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:50]}"


class ProfileSummary(models.Model):
    """What the assistant knows of a user across all their sessions."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_profile")
    summary = models.TextField(blank=True, default="")
    summarized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "profile summaries"
