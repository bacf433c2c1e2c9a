"""The local embedding model (all-MiniLM-L6-v2: BERT, 6 layers, mean pooling, unit length) run on
PyTorch and the `tokenizers` library alone.

What sentence-transformers runs for this model is the same computation, but importing it (and the
transformers library under it) costs a process about 170 MB before any weight is loaded: 407 MB
against 228 MB for PyTorch, safetensors and tokenizers (measured on Python 3.11, torch 2.13). Each
process that embeds (a documents worker's pool process, a web process, a chat or research worker)
keeps the model for its life, so that is memory kept by every one of them. The embeddings are
those sentence-transformers computes, to float rounding (tests/documents/test_minilm.py compares
them on the same texts).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer


class SentenceEncoder:
    """`encode(texts)`: one unit vector per text, in order."""

    def __init__(self, model_dir: Path):
        config = json.loads((model_dir / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir} holds no BERT model this encoder runs")
        max_tokens = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file pads and truncates to 128 tokens; the model was trained to read 256, and a batch
        # is padded to its longest text only.
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=config.get("pad_token_id", 0))
        self.weights = load_file(str(model_dir / "model.safetensors"))

    def encode(self, texts: list[str], *, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.weights["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
        # Surrounding whitespace is not part of the text (as sentence-transformers reads it).
        encodings = self.tokenizer.encode_batch([text.strip() for text in texts])
        # Batches of texts of about the same length: each is padded to its longest, so little is
        # computed for padding.
        order = sorted(range(len(texts)), key=lambda i: -sum(encodings[i].attention_mask))
        vectors = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chosen = order[start:start + batch_size]
                length = max(sum(encodings[i].attention_mask) for i in chosen)
                ids = torch.tensor([encodings[i].ids[:length] for i in chosen])
                mask = torch.tensor([encodings[i].attention_mask[:length] for i in chosen])
                for i, vector in zip(chosen, self._embed(ids, mask)):
                    vectors[i] = vector
        return torch.stack(vectors).numpy()

    def _embed(self, ids, mask):
        w = self.weights
        length = ids.shape[1]
        hidden = (w["embeddings.word_embeddings.weight"][ids]
                  + w["embeddings.position_embeddings.weight"][:length]
                  + w["embeddings.token_type_embeddings.weight"][0])
        hidden = self._norm(hidden, "embeddings.LayerNorm")
        # Padding is never attended to: a True is a position a token may look at.
        attend = mask.bool()[:, None, None, :]
        for n in range(self.layers):
            hidden = self._layer(hidden, attend, f"encoder.layer.{n}.")
        # Mean of the text's own tokens, then unit length.
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def _layer(self, hidden, attend, layer: str):
        functional = torch.nn.functional
        batch, length, _ = hidden.shape

        def heads(name: str):
            projected = self._dense(hidden, f"{layer}attention.self.{name}")
            return projected.view(batch, length, self.heads, -1).transpose(1, 2)

        context = functional.scaled_dot_product_attention(heads("query"), heads("key"), heads("value"), attn_mask=attend)
        context = context.transpose(1, 2).reshape(batch, length, -1)
        attended = self._norm(self._dense(context, f"{layer}attention.output.dense") + hidden,
                              f"{layer}attention.output.LayerNorm")
        widened = functional.gelu(self._dense(attended, f"{layer}intermediate.dense"))
        return self._norm(self._dense(widened, f"{layer}output.dense") + attended, f"{layer}output.LayerNorm")

    def _dense(self, x, name: str):
        return torch.nn.functional.linear(x, self.weights[f"{name}.weight"], self.weights[f"{name}.bias"])

    def _norm(self, x, name: str):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.weights[f"{name}.weight"],
                                                   self.weights[f"{name}.bias"], self.eps)
