"""A model directory for Dynamo's CPU mocker: a tokenizer, a chat template, a config.

The mocker simulates an engine but the Dynamo frontend still loads a real Hugging Face
tokenizer and ``config.json`` for the model it serves (and refuses a model whose config
names no architecture). This writes a small one that needs no download: a WordPiece
tokenizer whose vocabulary is the prompt corpus, so a corpus word is exactly one token
as on the embedded simulator, and any other word (a nonce such as ``id3fa9c0...``)
splits into single characters, so different nonces stay different token sequences.

Usage: ``python -m spark_harness.serving.tiny_model DIR [--corpus FILE]`` (idempotent:
an existing complete directory is kept). Needs ``tokenizers`` and ``transformers``,
which ``tools/install_dynamo.sh`` installs with Dynamo.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import tempfile
from pathlib import Path

from spark_harness.workloads.corpus import DEFAULT_CORPUS, load_words

ROLES = ("system", "user", "assistant")
SPECIAL = ["[UNK]", "<s>", "</s>", *(f"<|{r}|>" for r in ROLES)]
# one token per message role, then the content's words: the simulator's chat rule
# (spark_harness.tokens), plus the assistant turn that asks for the answer
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
MAX_POSITIONS = 32768
DONE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")


def vocabulary(words: tuple[str, ...]) -> dict[str, int]:
    """Special tokens, the corpus words, then single characters and their continuations."""
    chars = string.ascii_letters + string.digits + string.punctuation
    tokens = [*SPECIAL, *words, *chars, *(f"##{c}" for c in chars)]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def write_model_dir(path: Path, corpus: str = DEFAULT_CORPUS) -> Path:
    """Write the model directory at ``path`` unless it is already complete."""
    if all((path / f).exists() for f in DONE_FILES):
        return path
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary(load_words(corpus))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=64))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=[f"<|{r}|>" for r in ROLES],
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    config = {
        "architectures": ["LlamaForCausalLM"],  # without it the frontend refuses the model
        "model_type": "llama",
        "vocab_size": len(vocab),
        "max_position_embeddings": MAX_POSITIONS,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "bos_token_id": vocab["<s>"],
        "eos_token_id": vocab["</s>"],
        "torch_dtype": "bfloat16",
    }
    # build beside the target and rename: concurrent points never see half a directory
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    fast.save_pretrained(tmp)
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    try:
        os.rename(tmp, path)
    except OSError:  # another process finished first
        if not all((path / f).exists() for f in DONE_FILES):
            raise
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--corpus", default=DEFAULT_CORPUS)
    args = p.parse_args(argv)
    print(write_model_dir(args.dir, args.corpus))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
