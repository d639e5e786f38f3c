"""Running a BERT classifier piece by piece with its own modules (no copied modeling code).

Extraction stops after the last layer's attention probabilities (its
feed-forward block and the classifier are not needed for maps); the ablation
sweep starts from cached hidden states at the first disabled layer, and needs
the last layer at [CLS] only, since the classifier reads nothing else.
"""

from __future__ import annotations

import torch
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward


class Pieces:
    """Embeddings, layers, and classifier head of a BertForSequenceClassification."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.bert = model.base_model
        self.layers = self.bert.encoder.layer
        self.n_layers = len(self.layers)

    def embed(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states entering layer 0, and the attention mask in the layers' format."""
        hidden = self.bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        mask = create_bidirectional_mask(
            config=self.bert.config, inputs_embeds=hidden, attention_mask=batch["attention_mask"]
        )
        return hidden, mask

    def run(self, hidden: torch.Tensor, mask, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Layers ``start`` .. ``stop - 1`` on ``hidden`` (the states entering layer ``start``)."""
        for layer in self.layers[start : self.n_layers if stop is None else stop]:
            hidden = layer(hidden, mask)
        return hidden

    def attention_only(self, layer: int, hidden: torch.Tensor, mask) -> None:
        """Only the self-attention of ``layer``: enough to capture its maps."""
        self.layers[layer].attention.self(hidden, mask)

    def last_for_cls(self, hidden: torch.Tensor, mask) -> torch.Tensor:
        """The last layer's output at [CLS] only ([batch, 1, hidden]): all that ``classify`` reads.

        Keys and values still come from every token, so the result is the full
        layer's row 0; the other queries, about (L-1)/L of the layer, are skipped.
        """
        layer = self.layers[-1]
        attention = layer.attention.self
        cls = hidden[:, :1]
        heads = (hidden.shape[0], -1, attention.num_attention_heads, attention.attention_head_size)
        query = attention.query(cls).view(heads).transpose(1, 2)
        key = attention.key(hidden).view(heads).transpose(1, 2)
        value = attention.value(hidden).view(heads).transpose(1, 2)
        function = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager_attention_forward)
        context, _ = function(attention, query, key, value, None if mask is None else mask[:, :, :1],
                              dropout=0.0, scaling=attention.scaling)
        out = layer.attention.output(context.reshape(hidden.shape[0], 1, -1), cls)
        return layer.feed_forward_chunk(out)

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's output (pooler, dropout, classifier)."""
        pooled = self.bert.pooler(hidden)
        return self.model.classifier(self.model.dropout(pooled))
