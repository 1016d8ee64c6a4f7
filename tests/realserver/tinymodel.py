"""Write a tiny llama-architecture GGUF model with random weights, for tests/realserver.

Run as a script in the llama.cpp server's virtualenv (which has ``gguf`` and ``numpy``;
botkit's own does not need them): ``python tinymodel.py OUT.gguf [CONTEXT]``.

The model is what llama.cpp needs to load a llama and nothing more: two layers, 64-wide,
a SentencePiece-style vocabulary of the three specials, ChatML's two markers, the 256
byte-fallback tokens (so any text tokenizes) and the printable ASCII characters, and a
ChatML chat template, so the server formats chat requests as it would for a real model.
Its answers are gibberish; the tests assert protocol behaviour, never content. The
weights come from a fixed seed, so every run writes the same file.

Random weights alone give near-uniform choices: a JSON answer then wanders inside a
string until the token limit, and the end-of-text token ends answers at random. So one
dimension of every token's embedding is a large constant, which makes that dimension
dominate the last hidden state, and the output weights of that dimension bias the
choice: letters first (varied gibberish), ``}`` next (a JSON answer closes at once:
``{}``), end-of-text never (an answer runs to its token limit, or to the end of its
grammar).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gguf
import numpy as np

CONTEXT = 512
EMBED = 64
HEADS = 4
LAYERS = 2
FEED_FORWARD = 128
SEED = 13

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of a byte-fallback SentencePiece vocabulary."""
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
    ]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = ["\u2581"] + [chr(c) for c in range(0x21, 0x7F)]
    pieces += ["\u2581" + chr(c) for c in range(0x21, 0x7F)]
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + [-float(i) for i in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def bias(token: str) -> float:
    """How much the model prefers ``token`` (about the logit it gets)."""
    if token == "</s>":
        return -10.0
    if token.removeprefix("\u2581").isalpha():
        return 10.0
    if token == "}":
        return 9.0
    return 0.0


def write(path: Path, context: int = CONTEXT) -> None:
    """Write the model to ``path``."""
    tokens, scores, types = vocabulary()
    rng = np.random.default_rng(SEED)

    def weights(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("botkit tiny test model")
    writer.add_context_length(context)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    # numpy shapes are (rows, columns): ggml's dimensions reversed
    ones = np.ones(EMBED, dtype=np.float32)
    embeddings = weights(len(tokens), EMBED)
    embeddings[:, 0] = 1.0  # the constant that dominates the last hidden state...
    output = weights(len(tokens), EMBED)
    output[:, 0] = [bias(token) / 8 for token in tokens]  # ...so this column biases
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)
    for layer in range(LAYERS):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weights(EMBED, EMBED))
        writer.add_tensor(f"{block}.ffn_norm.weight", ones)
        writer.add_tensor(f"{block}.ffn_gate.weight", weights(FEED_FORWARD, EMBED))
        writer.add_tensor(f"{block}.ffn_up.weight", weights(FEED_FORWARD, EMBED))
        writer.add_tensor(f"{block}.ffn_down.weight", weights(EMBED, FEED_FORWARD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    write(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else CONTEXT)
