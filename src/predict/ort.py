"""ONNX Runtime backend: a checkpoint exported once to ONNX (optionally int8), run by an ``InferenceSession``.

On CPU, ONNX Runtime runs the fp32 MiniLM about 1.9x faster than eager torch, and its dynamic int8 quantisation
(per-channel int8 weights, full-range uint8 activations) loses far less F1 than torch's (BENCHMARKS.md: -0.0007 vs
-0.0085 on the CoNLL-2003 test set). The export is cached under ``NEWSFRAME_CACHE`` (default
``~/.cache/newsframe``), so the checkpoint folder is never written to. A model folder's export is keyed by the sha256
of its ``config.json`` and weight files (``src.files.file_sha256``, remembered per file identity, so a later start
reads neither the weights nor torch's copy of them: it loads the cached export directly); a retrained checkpoint has
other bytes and never reuses a stale export. Needs the ``onnx`` extra: ``pip install -e ".[onnx]"``.

The cache is not trusted as found: each exported file has its sha256 in ``FILE.sha256.json`` next to it, checked
every time it is loaded (the checked bytes are the ones given to ONNX Runtime); a file that does not match, or has
no record, is exported again with a warning. Exports and checks hold a lock on the cache entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import PretrainedConfig, PreTrainedModel

from src.files import cache_root, file_sha256, write_json

log = logging.getLogger(__name__)

ONNX_OPSET = 17
# Part of every cache key: bump it when the exported graph changes (opset, wrapper), so old exports are not reused.
EXPORT_VERSION = f"logits-embedding-opset{ONNX_OPSET}"
INPUTS = ("input_ids", "attention_mask")


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError('backend "onnx" needs onnxruntime and onnx: pip install -e ".[onnx]"') from err
    return onnxruntime


def cache_dir() -> Path:
    return cache_root() / "onnx"


def folder_key(folder: str | os.PathLike) -> str:
    """The export key of a model folder: the sha256 of its ``config.json`` and weight files (``*.safetensors`` and
    the shard index), with the export version. The same checkpoint maps to the same export wherever it lies; a
    retrained or edited one (other bytes) to another. Cheap after the first start (``file_sha256``)."""
    files = sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and (p.name == "config.json" or p.name.endswith((".safetensors", ".safetensors.index.json")))
    )
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for file in files:
        digest.update(f"\0{file.name}\0{file_sha256(file)}".encode())
    return "f" + digest.hexdigest()[:20]


def weights_key(model: PreTrainedModel) -> str:
    """A hash of the weights and the config of a model in memory (not loaded from a folder)."""
    digest = hashlib.sha256(EXPORT_VERSION.encode() + model.config.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


class _Exported(torch.nn.Module):
    """The exported graph: ``(input_ids, attention_mask) -> (logits, embedding)``, batch and length dynamic; the
    embedding is the mean-pooled last hidden state that stance prototypes compare (``src.prototypes``)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from src.prototypes import mean_pool

        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.logits, mean_pool(out.hidden_states[-1], attention_mask)


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _verified(path: Path) -> bytes | None:
    """The cached file's bytes if their sha256 is the one recorded at export, else None (with a warning when the
    file is there: someone or something changed it, and every prediction would silently change with it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        recorded = json.loads(checksum_path(path).read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        log.warning(
            "%s does not match its recorded sha256 (%s, found %s); exporting the model again",
            path,
            "none recorded" if recorded is None else recorded[:16],
            actual[:16],
        )
        return None
    return data


def load_export(key: str, quantize: str, load_model: Callable[[], PreTrainedModel]) -> tuple[Path, bytes]:
    """The path and verified bytes of the ONNX export cached under ``key`` (``quantize``: ``none`` or ``int8``);
    only when it is missing or fails its check is ``load_model()`` called and the model exported. A lock on the
    cache entry keeps concurrent processes (e.g. Ray actors) from exporting over each other. A cache that cannot be
    read or written (read-only, a file where a folder belongs) costs a fresh export for this run, with one warning,
    instead of every prediction."""
    try:
        return _load_cached(key, quantize, load_model)
    except OSError as err:
        log.warning("%s: the ONNX cache cannot be used (%s); exporting for this run only", cache_dir() / key, err)
    scratch = Path(tempfile.mkdtemp(prefix="newsframe-onnx-"))
    try:
        path = scratch / key / _file_name(quantize)
        _export(load_model(), quantize, path.parent)
        data = _verified(path)
        if data is None:
            raise RuntimeError(f"{path}: the fresh ONNX export does not match its own sha256")
        return path, data
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _file_name(quantize: str) -> str:
    return "model.int8.onnx" if quantize == "int8" else "model.onnx"


def _load_cached(key: str, quantize: str, load_model: Callable[[], PreTrainedModel]) -> tuple[Path, bytes]:
    import fcntl

    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / f".{key}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = cache_dir() / key / _file_name(quantize)
        data = _verified(path)
        if data is None:
            _export(load_model(), quantize, path.parent)
            data = _verified(path)
            if data is None:
                raise RuntimeError(f"{path}: the fresh ONNX export does not match its own sha256")
    return path, data


def export(model: PreTrainedModel, quantize: str) -> Path:
    """The ONNX file of ``model``, exported on first use and cached (see ``load_export``)."""
    return load_export(weights_key(model), quantize, lambda: model)[0]


def _export(model: PreTrainedModel, quantize: str, target: Path) -> None:
    """Export into a temporary folder, then move each file into ``target`` and record its sha256, so an
    interrupted export leaves no file that passes the check."""
    _require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        log.info("exporting the model to ONNX (%s) in %s", quantize, target)
        fp32 = scratch / "model.onnx"
        dummy = torch.ones(2, 8, dtype=torch.long)
        axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
        with warnings.catch_warnings():  # tracer warnings about Python branches on shapes: none depends on the input
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Exported(model.float().eval()),
                (dummy, dummy),
                str(fp32),
                input_names=list(INPUTS),
                output_names=["logits", "embedding"],
                dynamic_axes={**axes, "logits": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        if quantize == "int8":
            logging.disable(logging.WARNING)  # onnxruntime logs a generic "consider pre-processing" hint to root
            try:
                quantize_dynamic(fp32, scratch / "model.int8.onnx", weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(logging.NOTSET)
        target.mkdir(exist_ok=True)
        for file in scratch.iterdir():
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            os.replace(file, target / file.name)
            write_json(checksum_path(target / file.name), {"file": file.name, "sha256": digest})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class OrtModel:
    """An ONNX Runtime session that answers like a transformers model: ``model(input_ids=..., attention_mask=...)``
    returns an object with ``.logits`` and ``.embedding`` (torch tensors), so ``TaskModel`` runs either backend the
    same way."""

    def __init__(self, config: PretrainedConfig, path: Path, data: bytes, threads: int | None = None) -> None:
        ort = _require_onnxruntime()
        self.config, self.path = config, path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        # The checked bytes, not the path: the file could change between the check and a second read.
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        config: PretrainedConfig,
        quantize: str,
        load_model: Callable[[], PreTrainedModel],
        threads: int | None = None,
    ) -> OrtModel:
        """The cached export of a model folder (``load_model`` is called only to export it the first time)."""
        _require_onnxruntime()
        return cls(config, *load_export(folder_key(folder), quantize, load_model), threads=threads)

    @classmethod
    def from_model(cls, model: PreTrainedModel, quantize: str, threads: int | None = None) -> OrtModel:
        """The export of a model in memory, keyed by a hash of its weights."""
        _require_onnxruntime()
        return cls(model.config, *load_export(weights_key(model), quantize, lambda: model), threads=threads)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: torch.Tensor) -> SimpleNamespace:
        feeds = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        logits, embedding = self.session.run(None, feeds)
        return SimpleNamespace(logits=torch.from_numpy(logits), embedding=torch.from_numpy(embedding))
