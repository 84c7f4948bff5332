"""The simulator's tokenization, shared with the workload generators.

The embedded simulator counts tokens deterministically so that a client can build a
prompt of an exact length and an exact shared prefix:

- a text's tokens are its whitespace-separated words (``text.split()``);
- a chat request's prompt is, per message in order, one role token (``<|role|>``)
  followed by the words of its content; so a chat prompt has
  ``sum(1 + len(content.split()))`` tokens;
- generated text is one word per token, joined by single spaces (each streamed event
  carries a leading space except the first).

Prefix reuse hashes these token strings, so equal leading words mean a shared prefix.
Against real servers the same generators are approximate (see ``workloads``); the error
against server-reported usage is recorded per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def text_tokens(text: str) -> list[str]:
    """Tokens of a plain-text prompt."""
    return text.split()


def chat_tokens(messages: Iterable[Mapping[str, object]]) -> list[str]:
    """Tokens of a chat prompt: a role token then the content's words, per message."""
    out: list[str] = []
    for msg in messages:
        out.append(f"<|{msg.get('role', 'user')}|>")
        content = msg.get("content", "")
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        out.extend(str(content).split())
    return out


def count_text(text: str) -> int:
    return len(text.split())


def count_chat(messages: Iterable[Mapping[str, object]]) -> int:
    return len(chat_tokens(messages))
