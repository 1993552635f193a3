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
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import PretrainedConfig, PreTrainedModel

from src.files import cache_root, file_sha256, write_json
from src.prototypes import mean_pool

log = logging.getLogger(__name__)

ONNX_OPSET = 17
# Part of every cache key: bump it when the exported graph changes (opset, wrapper, attention), so old exports are
# not reused.
EXPORT_VERSION = f"logits-embedding-opset{ONNX_OPSET}-eager"
# The attention the graph is traced with: the eager attention's graph ran 1.1-1.5x faster (fp32) than the one traced
# from PyTorch's SDPA in bare ONNX Runtime sessions, 0.98-1.11x in the Predictor, with the same logits to float
# rounding (docs/decisions.md, "ONNX graphs"; the sdpa-graph row of scripts/benchmark_predict.py).
EXPORT_ATTENTION = "eager"
# The weight products that int8 may leave in fp32: "head" (every product after the last encoder layer: the
# classifier, a pooler) and "last-ffn" (the last layer's feed-forward output). The recipe is part of the file name.
INT8_FP32_PARTS = ("head", "last-ffn")
INT8_FP32_DEFAULT: tuple[str, ...] = ()
_LAYER = re.compile(r"layer[._]\d+")
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


def load_export(
    key: str, quantize: str, load_model: Callable[[], PreTrainedModel], fuse: bool = False
) -> tuple[Path, bytes]:
    """The path and verified bytes of the ONNX export cached under ``key`` (``quantize``: ``none`` or ``int8``;
    ``fuse``: the graph rewritten by ONNX Runtime's transformer optimizer, see ``fuse_graph``, cached apart);
    only when it is missing or fails its check is ``load_model()`` called and the model exported. A lock on the
    cache entry keeps concurrent processes (e.g. Ray actors) from exporting over each other. A cache that cannot be
    read or written (read-only, a file where a folder belongs) costs a fresh export for this run, with one warning,
    instead of every prediction."""
    try:
        return _load_cached(key, quantize, load_model, fuse)
    except OSError as err:
        log.warning("%s: the ONNX cache cannot be used (%s); exporting for this run only", cache_dir() / key, err)
    scratch = Path(tempfile.mkdtemp(prefix="newsframe-onnx-"))
    try:
        path = scratch / key / _file_name(quantize, fuse)
        _export(load_model(), quantize, path.parent, fuse)
        data = _verified(path)
        if data is None:
            raise RuntimeError(f"{path}: the fresh ONNX export does not match its own sha256")
        return path, data
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def int8_fp32_parts() -> tuple[str, ...]:
    """What int8 leaves in fp32: ``INT8_FP32_DEFAULT``, or for an experiment the comma list in
    ``NEWSFRAME_INT8_FP32`` (empty: quantise every weight product)."""
    raw = os.environ.get("NEWSFRAME_INT8_FP32")
    parts = INT8_FP32_DEFAULT if raw is None else tuple(p.strip() for p in raw.split(",") if p.strip())
    unknown = sorted(set(parts) - set(INT8_FP32_PARTS))
    if unknown:
        raise ValueError(f"NEWSFRAME_INT8_FP32: unknown part {', '.join(unknown)}; known: {', '.join(INT8_FP32_PARTS)}")
    return tuple(p for p in INT8_FP32_PARTS if p in parts)


def _file_name(quantize: str, fuse: bool = False) -> str:
    int8 = ""
    if quantize == "int8":
        parts = int8_fp32_parts()
        int8 = ".int8" + ("-fp32-" + "-".join(parts) if parts else "")
    return "model" + (".fused" if fuse else "") + int8 + ".onnx"


def fp32_nodes(source: Path, parts: tuple[str, ...]) -> list[str]:
    """The names of the weight products (``MatMul`` / ``Gemm`` with a stored weight) that ``parts`` keep in fp32;
    encoder layers are recognised by ``layer.N`` / ``layer_N`` in the node names, as torch's exporter writes them."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    products = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and any(i in weights for i in n.input)]
    in_layers = [i for i, node in enumerate(products) if _LAYER.search(node.name)]
    if not in_layers:
        return []
    last = in_layers[-1]
    keep = [node.name for node in products[last + 1 :]] if "head" in parts else []
    return keep + ([products[last].name] if "last-ffn" in parts else [])


def _load_cached(key: str, quantize: str, load_model: Callable[[], PreTrainedModel], fuse: bool) -> tuple[Path, bytes]:
    import fcntl

    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / f".{key}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = cache_dir() / key / _file_name(quantize, fuse)
        data = _verified(path)
        if data is None:
            _export(load_model(), quantize, path.parent, fuse)
            data = _verified(path)
            if data is None:
                raise RuntimeError(f"{path}: the fresh ONNX export does not match its own sha256")
    return path, data


def export(model: PreTrainedModel, quantize: str, fuse: bool = False) -> Path:
    """The ONNX file of ``model``, exported on first use and cached (see ``load_export``)."""
    return load_export(weights_key(model), quantize, lambda: model, fuse)[0]


def trace(model: PreTrainedModel, path: Path, attention: str = EXPORT_ATTENTION) -> None:
    """Trace ``model`` (in fp32, with ``attention``) into an ONNX file at ``path``; the model is left as it was."""
    before = model.config._attn_implementation
    model.set_attn_implementation(attention)
    dummy = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    try:
        with warnings.catch_warnings():  # tracer warnings about Python branches on shapes: none depends on the input
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Exported(model.float().eval()),
                (dummy, dummy),
                str(path),
                input_names=list(INPUTS),
                output_names=["logits", "embedding"],
                dynamic_axes={**axes, "logits": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
    finally:
        model.set_attn_implementation(before)


def fuse_graph(source: Path, target: Path, config: PretrainedConfig) -> dict[str, int]:
    """Rewrite a BERT-family graph with ONNX Runtime's transformer optimizer (attention, embedding + LayerNorm,
    skip + LayerNorm and bias + GELU fused into single operators); returns the count of each fused operator. Not
    the default: on CPU it is no faster than the plain graph, which ONNX Runtime already partly fuses when a session
    starts (docs/decisions.md, "ONNX graphs")."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=0,  # fusions only: what ONNX Runtime adds at session start is hardware-specific
    )
    optimized.save_model_to_file(str(target))
    return {name: n for name, n in optimized.get_fused_operator_statistics().items() if n}


def quantize_graph(source: Path, target: Path, keep_fp32: tuple[str, ...] = ()) -> None:
    """ONNX Runtime's dynamic int8: per-channel int8 weights, uint8 activations quantised per batch; the weight
    products of ``keep_fp32`` (``INT8_FP32_PARTS``) stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = fp32_nodes(source, keep_fp32)
    logging.disable(logging.WARNING)  # onnxruntime logs a generic "consider pre-processing" hint to root
    try:  # DefaultTensorType: the fused operators' outputs have no inferred type; they are all fp32
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=excluded,
            extra_options={"DefaultTensorType": 1},
        )
    finally:
        logging.disable(logging.NOTSET)


def _export(model: PreTrainedModel, quantize: str, target: Path, fuse: bool = False) -> None:
    """Export into a temporary folder, then move each file into ``target`` and record its sha256, so an
    interrupted export leaves no file that passes the check."""
    _require_onnxruntime()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        log.info("exporting the model to ONNX (%s%s) in %s", quantize, ", fused" if fuse else "", target)
        graph = scratch / "traced.onnx"
        trace(model, graph)
        if fuse:
            fuse_graph(graph, scratch / "fused.onnx", model.config)
            graph.unlink()
            graph = scratch / "fused.onnx"
        if quantize == "int8":
            quantize_graph(graph, scratch / _file_name(quantize, fuse), int8_fp32_parts())
            graph.unlink()
        else:
            graph.rename(scratch / _file_name(quantize, fuse))
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
