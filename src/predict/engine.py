"""The Predictor: the trained checkpoints loaded once (one ``TaskModel`` per task), applied to many documents in
length-sorted batches.

Each task decodes its model's outputs into record fields (``Task.predict`` / ``Task.fill``: NER per word from its
first sub-token, merged into whole-word character spans; stance as the mean of a sentence's window probabilities).
Documents stream through in chunks of sentences, so memory stays bounded for a million documents as for one 1 MB
document.

A document that cannot be predicted (a text that is not valid Unicode, a tokenizer error, any exception) becomes
that document's error record; the documents batched with it are redone one by one, so they are not lost with it.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import AutoConfig, DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerFast

from src.data.segment import split_sentences
from src.labels import LabelScheme, none_label_of
from src.model import load_checkpoint, load_tokenizer, resolve_device, resolve_model_dir
from src.model_folder import ModelFolder
from src.predict.io import error_record, text_problem
from src.predict.ort import OrtModel
from src.prototypes import mean_pool
from src.tasks import TASKS, get_task
from src.tasks.ner import tag_words, word_logits
from src.tasks.stance import classify, sentence_embeddings

if TYPE_CHECKING:
    from src.predict.ort import OrtModel

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
QUANTIZATIONS = ("none", "int8")
QUANTIZE_CHOICES = ("auto", *QUANTIZATIONS)  # auto: the model folder's cpu_quantize on CPU with ONNX Runtime
BACKENDS = ("auto", "torch", "onnx")


class OptionError(ValueError):
    """A prediction option out of range for the model (``option`` names it, e.g. ``max_length``), so the command
    line can name its flag."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option} {message}")
        self.option = option
        self.detail = message


def check_labels(folder: str, record: ModelFolder, config) -> None:
    """The labels of ``newsframe.json`` and of ``config.json`` (what the head outputs) must be the same list."""
    id2label = getattr(config, "id2label", None) or {}
    labels = [id2label.get(i) for i in range(len(id2label))]
    if labels != list(record.labels):
        raise ValueError(
            f"{folder}: the labels of newsframe.json {record.labels} disagree with config.json's id2label {labels}; "
            "the folder was edited or mixed from two models: train it again"
        )


def check_windows(
    max_length: int | None,
    stride: int | None,
    batch_size: int,
    position_limit: int | None,
    tokenizer: PreTrainedTokenizerFast,
) -> tuple[int, int]:
    """The window length and stride to use, checked against the model (``position_limit``: its
    ``max_position_embeddings``) and tokenizer before any weights are loaded: a window longer than the position
    table fails only deep inside the first batch otherwise."""
    if batch_size < 1:
        raise OptionError("batch_size", f"{batch_size}: must be at least 1")
    if max_length is not None and max_length < 1:
        raise OptionError("max_length", f"{max_length}: must be at least 1")
    if max_length is not None and position_limit is not None and max_length > position_limit:
        raise OptionError(
            "max_length", f"{max_length}: longer than the model's {position_limit} positions (max_position_embeddings)"
        )
    if stride is not None and stride < 0:
        raise OptionError("stride", f"{stride}: must be 0 or more")
    max_length = max_length or min(tokenizer.model_max_length, position_limit or 512, 512)
    # Overlap between windows in tokens: a quarter gives every word at least that much context on each side.
    stride = max_length // 4 if stride is None else stride
    specials = tokenizer.num_special_tokens_to_add()
    if not stride < max_length - specials:
        raise OptionError(
            "stride", f"{stride}: must be smaller than the window length {max_length} minus {specials} special tokens"
        )
    return max_length, stride


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16, also on CPUs with AMX): there bf16 runs about twice
    as fast as fp32; elsewhere torch emulates it, slower than fp32."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


def resolve_precision(precision: str, device: torch.device, cpu_precision: str = "fp32") -> torch.dtype:
    """``auto``: bf16 (or fp16 where bf16 is unsupported) on CUDA; on CPU the model folder's ``cpu_precision``
    where the CPU has native bf16 (the choice is measured per task, docs/decisions.md), else fp32."""
    if precision == "auto":
        if device.type != "cuda":
            return torch.bfloat16 if cpu_precision == "bf16" and native_bf16() else torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}; got {precision!r}")
    return PRECISIONS[precision]


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """``auto``: ONNX Runtime for fp32 on CPU where the ``onnx`` extra is installed (about 2x eager torch, the same
    predictions to float rounding), torch otherwise (GPU, half precision, no onnxruntime)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend != "auto":
        return backend
    has_ort = all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
    return "onnx" if has_ort and device.type == "cpu" and dtype == torch.float32 else "torch"


def resolve_quantize(quantize: str, cpu_quantize: str, onnx_cpu_fp32: bool) -> str:
    """``auto``: the folder's ``cpu_quantize`` where ONNX Runtime runs it on CPU in fp32 (the path its choice was
    measured on), else ``none``; an explicit choice stays."""
    if quantize != "auto":
        return quantize
    return cpu_quantize if onnx_cpu_fp32 else "none"


def quantize_int8(model: PreTrainedModel) -> torch.nn.Module:
    """The model with the encoder's ``nn.Linear`` layers dynamically quantised to int8 (weights int8 per output
    channel, activations quantised per batch); the task head stays fp32. On x86 CPUs the matrix products, most of a
    small BERT's time, run about 3x faster, at a cost of about 0.01 NER F1 (BENCHMARKS.md: ONNX Runtime's int8,
    ``backend="onnx"``, is faster and loses under 0.005). Pure torch; CPU only."""
    prefix = model.base_model_prefix + "."
    spec = {
        name: torch.ao.quantization.per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith(prefix)
    }
    with warnings.catch_warnings():  # torch marks eager-mode quantisation deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


class TaskModel:
    """One checkpoint with its tokenizer, window sizes and a padding collator, run in length-sorted batches.

    ``model`` is a transformers model, or for ``backend="onnx"`` already an ``OrtModel`` (a cached export loaded
    without the torch weights)."""

    def __init__(
        self,
        model: PreTrainedModel | OrtModel,
        tokenizer: PreTrainedTokenizerFast,
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int,
        max_length: int | None,
        stride: int | None,
        quantize: str = "none",
        backend: str = "auto",
        context: str = "none",
        calibration: dict | None = None,
        prototypes: dict | None = None,
        none_label: str | None = None,
        task_state: dict | None = None,
    ) -> None:
        positions = getattr(model.config, "max_position_embeddings", None)
        self.max_length, self.stride = check_windows(max_length, stride, batch_size, positions, tokenizer)
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}; got {quantize!r}")
        backend = resolve_backend(backend, device, dtype)
        if (quantize == "int8" or backend == "onnx") and (device.type != "cpu" or dtype != torch.float32):
            raise ValueError(
                f"backend {backend} with quantize {quantize} runs on CPU in fp32 only; got device {device.type}, "
                f"precision {dtype}"
            )

        if isinstance(model, OrtModel):
            if backend != "onnx":
                raise ValueError(f"an ONNX Runtime model runs with backend onnx, not {backend}")
            self.model = model
        else:
            self.model = model.to(device=device, dtype=dtype).eval()
            if backend == "onnx":
                self.model = OrtModel.from_model(self.model, quantize)
            elif quantize == "int8":
                self.model = quantize_int8(self.model)
        self.backend, self.quantize, self.dtype = backend, quantize, dtype
        self.tokenizer = tokenizer
        self.context = context  # what a stance model reads beside each sentence (newsframe.json "context")
        self.device = device
        self.batch_size = batch_size
        self.collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        self.id2label = {int(i): label for i, label in model.config.id2label.items()}
        # scores are softmax(logits / temperature): probabilities fitted out of fold (src/evaluate/calibration.py)
        calibration = calibration or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        bias = calibration.get("decision_bias") or {}
        self.decision_bias = np.array([bias.get(self.id2label[i], 0.0) for i in range(len(self.id2label))])
        # a stance model's guideline-prototype head (src/prototypes.py), averaged with the classifier
        self.prototypes = prototypes
        self.phrase_embeddings: np.ndarray | None = None  # embedded by this model on first use
        self.none_label = none_label  # a stance model's label that frames nothing (newsframe.json "none_label")
        self.task_state = task_state or {}  # what a plug-in task's finish fitted (newsframe.json "task_state")

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def logits(self, windows: dict[str, list], per_token: bool) -> list[np.ndarray]:
        """Float32 logits per window (``[tokens, labels]`` when ``per_token``, else ``[labels]``)."""
        return self.outputs(windows, per_token)[0]

    def outputs(
        self, windows: dict[str, list], per_token: bool, embed: bool = False
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Logits per window as ``logits`` gives them and, with ``embed``, each window's mean-pooled last hidden
        state (``[hidden]``, the sentence embedding the prototypes compare).

        Windows are sorted longest first so each batch pads to similar lengths; results come back in input order.
        """
        ids, masks = windows["input_ids"], windows["attention_mask"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        result: list[np.ndarray] = [np.empty(0)] * len(ids)
        embedded: list[np.ndarray] = [np.empty(0)] * len(ids)
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                chunk = order[b : b + self.batch_size]
                batch = self.collator([{"input_ids": ids[i], "attention_mask": masks[i]} for i in chunk])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                out = self.model(**batch, output_hidden_states=embed)
                logits = out.logits.float().cpu().numpy()
                if embed:  # the ONNX export pools in the graph; torch pools its last hidden state here
                    pooled = getattr(out, "embedding", None)
                    if pooled is None:
                        pooled = mean_pool(out.hidden_states[-1], batch["attention_mask"])
                    pooled = pooled.float().cpu().numpy()
                for row, i in enumerate(chunk):
                    result[i] = logits[row, : len(ids[i])] if per_token else logits[row]
                    if embed:
                        embedded[i] = pooled[row]
        return result, embedded if embed else None


class _Document:
    """A document on its way through: its sentence spans, and each task's results filled in as chunks complete."""

    def __init__(self, record: dict, spans: list[tuple[int, int]], tasks: Iterable[str]) -> None:
        self.record = record
        self.spans = spans
        self.results: dict[str, list] = {name: [None] * len(spans) for name in tasks}
        self.pending = len(spans)
        self.error: dict | None = None  # the error record once any part of it failed

    def prediction(self, models: dict[str, TaskModel], uncertainty: bool = False) -> dict:
        """The prediction record: every registered task fills in its fields (empty for a task with no model); with
        ``uncertainty``, each sentence's ``uncertainty``: every loaded task's ``(u, why)`` (``Task.uncertainty``)."""
        text = self.record["text"]
        record = {
            "id": self.record.get("id"),
            "entities": [],
            "sentences": [{"start": s, "end": e, "text": text[s:e]} for s, e in self.spans],
        }
        for name, task in TASKS.items():
            task.fill(record, self.results.get(name), models.get(name))
        if uncertainty:
            for i, sentence in enumerate(record["sentences"]):
                sentence["uncertainty"] = [get_task(name).uncertainty(self.results[name][i]) for name in models]
        return record


class Predictor:
    """Prediction of the loaded task models (``models``: task name -> ``TaskModel``; NER and stance here) over raw
    documents, records with gold sentences, or bare sentences."""

    def __init__(
        self,
        ner: TaskModel | None = None,
        stance: TaskModel | None = None,
        chunk_sentences: int = 2048,
        chunk_docs: int = 64,
        **models: TaskModel | None,
    ) -> None:
        self.models: dict[str, TaskModel] = {
            name: model for name, model in ({"ner": ner, "stance": stance} | models).items() if model is not None
        }
        if not self.models:
            raise ValueError(f"a Predictor needs a checkpoint of at least one task ({', '.join(TASKS)})")
        for name, model in self.models.items():
            if get_task(name).has_none_label and model.none_label is None:  # a TaskModel built by hand
                model.none_label = none_label_of(model.labels)
        self.chunk_sentences = chunk_sentences
        self.chunk_docs = chunk_docs

    @property
    def ner(self) -> TaskModel | None:
        return self.models.get("ner")

    @property
    def stance(self) -> TaskModel | None:
        return self.models.get("stance")

    def _model(self, task: str, needed_for: str) -> TaskModel:
        if task not in self.models:
            raise ValueError(f"{needed_for} needs a checkpoint of the {task} task (none was loaded)")
        return self.models[task]

    @classmethod
    def from_pretrained(
        cls,
        ner: str | None = None,
        stance: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
        stride: int | None = None,
        precision: str = "auto",
        quantize: str = "auto",
        backend: str = "auto",
        chunk_sentences: int = 2048,
        chunk_docs: int = 64,
        records: Mapping[str, ModelFolder] | None = None,
        **folders: str | None,
    ) -> Predictor:
        """Load model folders (a run folder uses its ``model/``; ``folders``: those of other registered tasks, by
        task name), each run as its ``newsframe.json`` says: its task and windows (``max_length`` / ``stride``; an
        explicit value overrides them, a ``max_length`` alone gets a quarter of it as stride).

        ``precision``: ``auto`` (half precision on CUDA; on CPU the folder's ``cpu_precision`` where the CPU has
        native bf16, e.g. AVX-512 BF16 or AMX, and backend and quantize are left to auto; fp32 otherwise),
        ``fp32``, ``fp16`` or ``bf16``. ``quantize``: ``auto`` (default: the folder's
        ``cpu_quantize`` where ONNX Runtime runs it on CPU in fp32, chosen per task by cross-validated F1; otherwise
        none), ``none`` or ``int8`` (dynamic int8 linear layers, CPU and fp32 only, see ``quantize_int8``).
        ``backend``: ``auto`` (default: ONNX Runtime for fp32 on CPU where the ``onnx`` extra is installed, else
        torch), ``torch`` or ``onnx`` (the export cached by ``src.predict.ort`` and loaded from there without the torch
        weights; with ``quantize="int8"`` the fastest CPU path). ``records``: by task name, the record of a folder
        that training is still writing, used instead of its ``newsframe.json`` (written once, when complete).
        """
        if quantize not in QUANTIZE_CHOICES:
            raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}; got {quantize!r}")
        torch_device = resolve_device(device)
        resolve_precision(precision, torch_device)  # a bad value fails before any folder is read
        options = (torch_device, precision, quantize, backend, batch_size, max_length, stride)
        paths = {name: path for name, path in ({"ner": ner, "stance": stance} | folders).items() if path is not None}
        for name in paths:
            get_task(name)  # an unknown task name fails before any folder is read
        records = records or {}
        loaded = {name: _load_task_model(name, path, *options, records.get(name)) for name, path in paths.items()}
        return cls(chunk_sentences=chunk_sentences, chunk_docs=chunk_docs, **loaded)

    @property
    def scheme(self) -> LabelScheme:
        """The loaded models' labels, each task's part as it says (``Task.scheme_part``: entity types of the NER
        tags, the stance labels and their none label, a sentence classifier's layer)."""
        parts: dict = {"entity_labels": (), "stance_labels": (), "none_label": None, "sentence_layers": {}}
        for name, model in self.models.items():
            for key, value in get_task(name).scheme_part(model).items():
                parts[key] = {**parts[key], **value} if isinstance(value, Mapping) else value
        return LabelScheme(**parts)

    # -- public API ---------------------------------------------------------------------------------------------

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """Prediction records for raw texts (ids ``"0"``, ``"1"``, ...), segmented by ``split_sentences``."""
        return list(self.iter_predict({"id": str(i), "text": text} for i, text in enumerate(texts)))

    def predict_records(self, records: Iterable[dict]) -> list[dict]:
        """Prediction records for records, on each record's own ``sentences`` spans when it has them (evaluation
        compares with gold sentences one to one)."""
        return list(self.iter_predict(records))

    def iter_predict(self, records: Iterable[dict], *, uncertainty: bool = False) -> Iterator[dict]:
        """Stream of prediction records in input order, computed in chunks of at most ``chunk_docs`` documents and
        ``chunk_sentences`` sentences (a long document's sentences are split over several chunks).

        A record with ``sentences`` is predicted on those spans, otherwise on ``split_sentences(text)``. A record
        that already carries an ``"error"`` (unreadable input) passes through in place, so outputs keep input order.
        A document that fails becomes an error record (``error.reason`` says what failed); the others go on.
        With ``uncertainty`` each sentence also gets ``uncertainty``, every loaded task's ``(u, why)`` of it
        (``Task.uncertainty``, what ``src.select`` ranks by), from the same pass.
        """
        for group in self.iter_predict_groups(records, uncertainty=uncertainty):
            yield from group

    def iter_predict_groups(self, records: Iterable[dict], *, uncertainty: bool = False) -> Iterator[list[dict]]:
        """``iter_predict``'s records in groups that end where the engine holds no document: what follows a group
        is predicted exactly as if it were the whole input (same chunks, same batches, so the same bytes), which
        is what lets an interrupted run resume from the end of a group and equal an uninterrupted one."""
        waiting: deque[_Document | dict] = deque()
        jobs: list[tuple[_Document, int]] = []
        group: list[dict] = []
        for record in records:
            doc = record if "error" in record else self._document(record)
            waiting.append(doc)
            if isinstance(doc, _Document):
                for i in range(len(doc.spans)):
                    jobs.append((doc, i))
                    if len(jobs) >= self.chunk_sentences:
                        self._run(jobs)
                        jobs = []
            if len(waiting) >= self.chunk_docs:  # short documents: predict and emit them in groups
                self._run(jobs)
                jobs = []
            group.extend(self._finished(waiting, uncertainty))
            if group and not waiting:
                yield group
                group = []
        self._run(jobs)
        group.extend(self._finished(waiting, uncertainty))
        if group:
            yield group

    def classify_sentences(self, sentences: Sequence[str]) -> list[dict]:
        """Stance of each given sentence as is (no segmentation, no neighbours: a model trained with context reads
        these alone): ``[{"stance", "scores": {label: prob}}]``."""
        model = self._model("stance", "classify_sentences")
        results = []
        for b in range(0, len(sentences), self.chunk_sentences):
            results.extend(classify(model, sentences[b : b + self.chunk_sentences]))
        return results

    def sentence_embeddings(self, sentences: Sequence[str], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        """``[n, hidden]``: the stance model's mean-pooled encoding of each sentence (windows averaged)."""
        model = self._model("stance", "sentence embeddings")
        return sentence_embeddings(model, sentences, contexts, self.chunk_sentences)

    def word_logits(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Raw logits ``[words, tags]`` of each word-split sentence (``src.tasks.ner.word_logits``)."""
        return word_logits(self._model("ner", "tagging words"), sentences)

    def tag_words(self, sentences: Sequence[Sequence[str]]) -> list[list[tuple[str, float]]]:
        """IOB2 tag and probability of every word of each sentence (``src.tasks.ner.tag_words``)."""
        return tag_words(self._model("ner", "tagging words"), sentences)

    # -- internals ----------------------------------------------------------------------------------------------

    @staticmethod
    def _sentence_spans(record: dict) -> list[tuple[int, int]]:
        if record.get("sentences") is not None:
            spans = [(int(s["start"]), int(s["end"])) for s in record["sentences"]]
            bad = next((span for span in spans if not 0 <= span[0] <= span[1] <= len(record["text"])), None)
            if bad is not None:
                raise ValueError(f"sentence span {bad[0]}-{bad[1]} is outside the text ({len(record['text'])} chars)")
            return spans

        return [tuple(span) for span in split_sentences(record["text"])]

    @staticmethod
    def _failure(record: dict, reason: str) -> dict:
        """The error record of a document that failed here (``file``/``line`` from the record when it has them)."""
        log.debug("document %s failed: %s", record.get("id"), reason, exc_info=True)
        return error_record(record.get("id"), record.get("file") or "<input>", record.get("line"), reason)

    def _document(self, record: dict) -> _Document | dict:
        """The document on its way, or its error record when its text or sentences cannot be used."""
        try:
            text = record["text"]
            if not isinstance(text, str):
                raise TypeError(f'"text" is {type(text).__name__}, not a string')
            problem = text_problem(text)
            if problem is not None:
                return self._failure(record, problem)
            return _Document(record, self._sentence_spans(record), self.models)
        except Exception as err:  # one bad document must not stop the batch
            return self._failure(record, f"cannot prepare the document: {type(err).__name__}: {err}")

    def _finished(self, waiting: deque, uncertainty: bool = False) -> Iterator[dict]:
        while waiting and (isinstance(waiting[0], dict) or waiting[0].pending == 0):
            item = waiting.popleft()
            if isinstance(item, dict):
                yield item
            elif item.error is not None:
                yield item.error
            else:
                try:
                    yield item.prediction(self.models, uncertainty)
                except Exception as err:
                    yield self._failure(item.record, f"prediction failed: {type(err).__name__}: {err}")

    def _run(self, jobs: list[tuple[_Document, int]]) -> None:
        """Fill in entities and stances of a chunk of sentences from many documents.

        When the chunk fails, each of its documents is redone alone: the one that fails again gets its error record
        (and its remaining sentences are skipped), the others their predictions."""
        live = [(doc, i) for doc, i in jobs if doc.error is None]
        try:
            self._run_batch(live)
        except Exception:
            by_doc: dict[int, list[tuple[_Document, int]]] = {}
            for job in live:
                by_doc.setdefault(id(job[0]), []).append(job)
            for doc_jobs in by_doc.values():
                doc = doc_jobs[0][0]
                try:
                    self._run_batch(doc_jobs)
                except Exception as err:
                    doc.error = self._failure(doc.record, f"prediction failed: {type(err).__name__}: {err}")
        for doc, _ in jobs:
            doc.pending -= 1

    def _run_batch(self, jobs: list[tuple[_Document, int]]) -> None:
        if not jobs:
            return
        texts = [(doc.record["text"], doc.spans, i) for doc, i in jobs]
        for name, model in self.models.items():
            for (doc, i), result in zip(jobs, get_task(name).predict(model, texts), strict=True):
                doc.results[name][i] = result


def _load_task_model(
    expected: str,
    path: str,
    torch_device: torch.device,
    precision: str,
    quantize: str,
    backend: str,
    batch_size: int,
    max_length: int | None,
    stride: int | None,
    record: ModelFolder | None = None,
) -> TaskModel:
    """One model folder loaded as ``Predictor.from_pretrained`` documents: its task checked, its windows and the
    engine (backend, precision, quantize) resolved for this folder (``record``: its record, not read from it)."""
    # The folder's cpu_precision is a choice of the default path: an explicit backend or int8 keeps fp32.
    folder_precision = backend == "auto" and quantize in ("auto", "none")
    folder = resolve_model_dir(str(path))
    if record is None:
        record = ModelFolder.from_dir(folder)  # how the folder must be run: its task and windows
    if record.task != expected:
        raise ValueError(f"{path}: is a {record.task} model, given as the {expected} model")
    tokenizer = load_tokenizer(folder)
    config = AutoConfig.from_pretrained(folder)
    check_labels(folder, record, config)
    positions = getattr(config, "max_position_embeddings", None)
    length = record.max_length if max_length is None else max_length
    step = record.stride if stride is None and max_length is None else stride
    if max_length is None and positions is not None and length > positions:  # the folder's own value
        raise ValueError(
            f"{folder}/newsframe.json: field 'windows.max_length' is {length}, longer than the model's {positions} "
            "positions (config.json max_position_embeddings)"
        )
    check_windows(length, step, batch_size, positions, tokenizer)
    task = get_task(expected)
    cpu_precision = record.cpu_precision if folder_precision else "fp32"
    dtype = resolve_precision(precision, torch_device, cpu_precision)
    task_backend = resolve_backend(backend, torch_device, dtype)
    cpu_fp32 = torch_device.type == "cpu" and dtype == torch.float32
    chosen = resolve_quantize(quantize, record.cpu_quantize, task_backend == "onnx" and cpu_fp32)
    if task_backend == "onnx" and cpu_fp32 and chosen in QUANTIZATIONS:  # else TaskModel says what is wrong
        model = OrtModel.from_folder(folder, config, chosen, lambda f=folder, t=task: load_checkpoint(f, t))
    else:
        model = load_checkpoint(folder, task)
    return TaskModel(
        model,
        tokenizer,
        torch_device,
        dtype,
        batch_size,
        length,
        step,
        chosen,
        task_backend,
        record.context,
        record.calibration,
        record.prototypes,
        record.none_label,
        record.task_state,
    )
