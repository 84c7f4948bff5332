"""Token counting and exact-length text: simulator rule, HF tokenizer file, approximation."""

from __future__ import annotations

from itertools import chain
from pathlib import Path

import pytest

from spark_harness.workloads.corpus import load_words, word_stream
from spark_harness.workloads.counting import HFCounter, SimCounter, WordCounter, make_counter

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer with a BOS token (the shape of Llama 3's), trained on the
    corpus with a small vocabulary: words split into several tokens, so exact counts need
    the tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = load_words()
    tok.train_from_iterator(
        [" ".join(words[i : i + 50]) for i in range(0, len(words), 50)], trainer
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_sim_counter_is_the_simulators_rule() -> None:
    c = SimCounter()
    assert c.exact and c.count_text("a b  c") == 3
    assert (
        c.count_chat([{"role": "user", "content": "a b"}, {"role": "assistant", "content": ""}])
        == 4
    )
    assert c.fit(iter("abcdef"), 4) == "a b c d"
    assert c.count_piece(" x y") == 2


def test_word_counter_is_marked_approximate() -> None:
    assert not WordCounter().exact and WordCounter().count_text("a b") == 2


@pytest.mark.parametrize("n", [1, 2, 7, 64, 300, 1000])
def test_hf_fit_is_exact_for_the_tokenizer(tokenizer_file: Path, n: int) -> None:
    c = HFCounter(str(tokenizer_file))
    words = load_words()
    text = c.fit(chain(["id3f9a2c"], word_stream(words, 1, "body")), n)
    assert c.count_text(text) == n  # BOS included, as the server counts
    assert text.startswith("id3f9a2c") or "id3f9a2c".startswith(text)  # nonce first
    assert len(text.split()) < n  # words are several tokens each here: a word count is wrong


def test_hf_fits_from_equal_words_share_their_prefix(tokenizer_file: Path) -> None:
    c = HFCounter(str(tokenizer_file))
    words = load_words()
    short = c.fit(word_stream(words, 1, "body"), 100)
    long = c.fit(word_stream(words, 1, "body"), 400)
    assert long.startswith(short.rsplit(" ", 1)[0])


def test_make_counter_picks_by_configuration(tokenizer_file: Path) -> None:
    assert isinstance(make_counter(None, True), SimCounter)
    assert type(make_counter(None, False)) is WordCounter
    assert isinstance(make_counter(str(tokenizer_file), True), HFCounter)
