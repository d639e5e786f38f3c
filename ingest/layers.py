"""Running a BERT classifier piece by piece with its own modules (no copied modeling code).

Extraction stops after the last layer's attention probabilities (its
feed-forward block and the classifier are not needed for maps); the ablation
sweep starts from cached hidden states at the first disabled layer.
"""

from __future__ import annotations

import torch
from transformers.masking_utils import create_bidirectional_mask


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

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's output (pooler, dropout, classifier)."""
        pooled = self.bert.pooler(hidden)
        return self.model.classifier(self.model.dropout(pooled))
