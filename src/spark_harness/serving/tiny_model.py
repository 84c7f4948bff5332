"""A tiny model directory, made here: a tokenizer, a chat template, a config, weights.

Dynamo's CPU mocker simulates an engine, but the Dynamo frontend still loads a real
Hugging Face tokenizer and ``config.json`` for the model it serves (and refuses a model
whose config names no architecture); a real engine (vLLM on the CPU) also needs
weights. This writes a small model that needs no download: a WordPiece tokenizer whose
vocabulary is the prompt corpus, so a corpus word is exactly one token as on the
embedded simulator, and any other word (a nonce such as ``id3fa9c0...``) splits into
single characters, so different nonces stay different token sequences; with
``--weights``, a Llama of random bfloat16 weights (4 layers of width 256, seeded: the
same bytes on every run with the same torch). Its replies are noise, which a benchmark
does not mind: requests ask for a fixed number of tokens with ``ignore_eos``.

Usage: ``python -m spark_harness.serving.tiny_model DIR [--corpus FILE] [--weights]``
(idempotent: an existing complete directory is kept). Needs ``tokenizers`` and
``transformers``, and ``torch`` for the weights: ``tools/install_dynamo.sh`` and
``tools/install_vllm_cpu.sh`` install them with the engines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

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
WEIGHTS_FILE = "model.safetensors"
SEED = 20261205


def vocabulary(words: tuple[str, ...]) -> dict[str, int]:
    """Special tokens, the corpus words, then single characters and their continuations."""
    chars = string.ascii_letters + string.digits + string.punctuation
    tokens = [*SPECIAL, *words, *chars, *(f"##{c}" for c in chars)]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def write_model_dir(path: Path, corpus: str = DEFAULT_CORPUS, weights: bool = False) -> Path:
    """Write the model directory at ``path`` unless it is already complete."""
    done = (*DONE_FILES, WEIGHTS_FILE) if weights else DONE_FILES
    if all((path / f).exists() for f in done):
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
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],  # without it the frontend refuses the model
        "model_type": "llama",
        "vocab_size": len(vocab),
        "max_position_embeddings": MAX_POSITIONS,
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,  # head size 64, which vLLM's CPU attention supports
        "num_key_value_heads": 4,
        "bos_token_id": vocab["<s>"],
        "eos_token_id": vocab["</s>"],
        "torch_dtype": "bfloat16",
    }
    # build beside the target and rename: concurrent points never see half a directory
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    fast.save_pretrained(tmp)
    if weights:
        _write_weights(tmp, config)
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    try:
        os.rename(tmp, path)
    except OSError as e:  # another process finished first, or a stale directory
        shutil.rmtree(tmp, ignore_errors=True)
        if not all((path / f).exists() for f in done):
            raise FileExistsError(f"{path}: an incomplete model directory; remove it") from e
    return path


def _write_weights(path: Path, config: dict[str, Any]) -> None:
    """Random, seeded Llama weights in bfloat16 as ``model.safetensors``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    model = LlamaForCausalLM(LlamaConfig(**config)).to(torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--corpus", default=DEFAULT_CORPUS)
    p.add_argument("--weights", action="store_true", help="random weights (needs torch)")
    args = p.parse_args(argv)
    print(write_model_dir(args.dir, args.corpus, args.weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
