"""Counting tokens and building text of an exact token count.

Three cases, chosen by :func:`make_counter`:

- the embedded simulator: its tokenization (:mod:`spark_harness.tokens`, one token per
  word, one role token per chat message) is known, so counts are exact;
- a configured Hugging Face ``tokenizer.json`` (``workload.tokenizer``, optional
  ``tokenizers`` package): exact for plain-text prompts, counting special tokens such as
  BOS as the server does; chat prompts are approximate since the server applies a chat
  template the client does not have;
- anything else: the simulator's word rule as an approximation. The server's own count
  (``usage.prompt_tokens``) is recorded beside the client's, so the error is known.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from spark_harness import tokens

Messages = Sequence[Mapping[str, Any]]


class Counter(ABC):
    """Counts prompt tokens the way a server would, and fits text to a token count."""

    #: short name recorded in logs ("sim", "hf:<file>", "approx-words")
    name: str
    #: whether plain-text counts equal the server's
    exact: bool
    #: tokens one chat message adds beyond its content (0 where unknown)
    chat_overhead: int

    @abstractmethod
    def count_text(self, text: str) -> int:
        """Tokens of a plain-text prompt."""

    @abstractmethod
    def count_chat(self, messages: Messages) -> int:
        """Tokens of a chat prompt."""

    @abstractmethod
    def count_piece(self, text: str) -> int:
        """Tokens of a fragment of generated text (one streamed event), no special tokens."""

    @abstractmethod
    def fit(self, words: Iterable[str], n: int) -> str:
        """Text made of the leading words of ``words`` with ``n`` tokens as a plain prompt.

        Texts fitted from streams with equal leading words share their leading tokens.
        """


class SimCounter(Counter):
    """The simulator's tokenization: exact."""

    name = "sim"
    exact = True
    chat_overhead = 1

    def count_text(self, text: str) -> int:
        return tokens.count_text(text)

    def count_chat(self, messages: Messages) -> int:
        return tokens.count_chat(messages)

    def count_piece(self, text: str) -> int:
        return tokens.count_text(text)

    def fit(self, words: Iterable[str], n: int) -> str:
        return " ".join(islice(words, max(n, 0)))


class WordCounter(SimCounter):
    """The simulator's word rule applied to a server whose tokenizer is unknown."""

    name = "approx-words"
    exact = False


class HFCounter(Counter):
    """A Hugging Face tokenizer file, via the optional ``tokenizers`` package."""

    exact = True
    chat_overhead = 0

    def __init__(self, path: str) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as e:  # optional dependency
            raise ImportError(
                "workload.tokenizer needs the `tokenizers` package: pip install 'spark-harness[hf]'"
            ) from e
        from spark_harness.workloads.corpus import resolve_input

        self.name = f"hf:{path}"
        self._tok = Tokenizer.from_file(str(resolve_input(path)))

    def count_text(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=True).ids)

    def count_chat(self, messages: Messages) -> int:
        # approximate: the server's chat template adds tokens this client cannot see
        return sum(self.count_piece(str(m.get("content", ""))) for m in messages)

    def count_piece(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def fit(self, words: Iterable[str], n: int) -> str:
        it = iter(words)
        taken: list[str] = []
        # grow word by word-batches until the text has at least n tokens
        while True:
            more = list(islice(it, max(8, n - len(taken))))
            taken.extend(more)
            text = " ".join(taken)
            if not more or self.count_text(text) >= n:
                break
        ids = self._tok.encode(text, add_special_tokens=True).ids
        best, best_err = text, abs(len(ids) - n)
        # cut at the token level; decode/encode may not round-trip exactly, so try the
        # neighbouring cut points and keep the first exact (or the closest) one
        for k in sorted(range(max(n - 4, 0), min(n + 5, len(ids) + 1)), key=lambda k: abs(k - n)):
            cand = self._tok.decode(ids[:k], skip_special_tokens=True)
            err = abs(self.count_text(cand) - n)
            if err < best_err:
                best, best_err = cand, err
            if err == 0:
                break
        return best


def make_counter(tokenizer: str | None, server_is_sim: bool) -> Counter:
    """The counter for a workload: HF file if configured, simulator rule if the server is
    the simulator, else the approximate word rule."""
    if tokenizer:
        return HFCounter(tokenizer)
    return SimCounter() if server_is_sim else WordCounter()
