"""Notes for a reply beyond the user's passages. Apps register providers here (research registers
its digests) from their AppConfig.ready, so the app that replies imports none of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ContextNote:
    """A text given to the model with the passages, and how a reply cites it."""

    title: str
    text: str
    citation: dict


_providers: list[Callable[..., list[ContextNote]]] = []


def context_provider_register(provider: Callable[..., list[ContextNote]]) -> None:
    """`provider(user=…, question=…)` returns the notes it has for this question (often none)."""
    if provider not in _providers:
        _providers.append(provider)


def context_notes(*, user, question: str) -> list[ContextNote]:
    return [note for provider in _providers for note in provider(user=user, question=question)]
