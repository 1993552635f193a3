"""What every task is: the ``Task`` interface that training, evaluation and prediction call instead of branching on a
task's name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PreTrainedTokenizerFast

from src.data.folds import as_dataset
from src.data.records import annotates
from src.errors import ConfigError

from .calibrate import Calibrated, CalibrationError
from .scoring import Baseline, match_documents

if TYPE_CHECKING:
    from src.predict.engine import Predictor, TaskModel

Job = tuple[str, Sequence[tuple[int, int]], int]  # a document's text, its sentence spans, the sentence to predict

MODEL_COLUMNS = ("input_ids", "attention_mask", "labels")


@dataclass(frozen=True)
class Task:
    """What a task is; subclasses fill in how it reads records, encodes them and is scored."""

    name: str
    pipeline_tag: str
    architecture_suffix: str  # e.g. "ForTokenClassification": how a model folder tells its task
    headline: str  # the metric a run returns, a sweep optimises and a report puts first
    layer: str  # the record layer it learns from ("entities", "stance"): records that do not annotate it are skipped
    has_none_label: bool = False  # one of its labels frames nothing (document stance ignores it)
    pipeline_kwargs: str = ""  # what transformers.pipeline needs beside the model, as the model card writes it
    decoding_note: str = ""  # how newsframe decodes differently from the pipeline, for the model card
    title: str = ""  # what a page calls its scores ("Entity scores: ..."); default: the name, capitalised
    # A sentence classifier of its own layer: the key of each sentence that holds its label (its scores under
    # KEY_scores), which the HTML page and Label Studio show and read (src.labels.LabelScheme.sentence_layers); the
    # built-in stance layer has views of its own.
    sentence_field: str | None = None

    calibrated_on = "predictions"  # what a calibration report says the scores were checked on

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name.capitalize())

    @property
    def auto_model(self) -> type:
        raise NotImplementedError

    def labels(self, data: Mapping) -> list[str]:
        raise NotImplementedError

    def examples(self, records: Sequence[dict], task_cfg: Mapping | None = None) -> tuple[list, list]:
        """``(inputs, targets)`` of the records' gold annotations, as ``task_cfg`` (the ``task`` config) asks."""
        raise NotImplementedError

    def encode(
        self, tokenizer, inputs: Sequence, targets: Sequence | None, label2id: dict, max_length: int, stride: int
    ):
        raise NotImplementedError

    def collator(self, tokenizer: PreTrainedTokenizerFast):
        raise NotImplementedError

    def augmented(self, records: Sequence[dict], task_cfg: Mapping, seed: int, mask_token: str | None) -> list[dict]:
        """The training records as the task's augmentation options ask (default: unchanged)."""
        return list(records)

    def annotated(self, records: Sequence[dict]) -> list[dict]:
        """The records that annotate this task's layer (``src.data.records.annotates``)."""
        return [r for r in records if annotates(r, self.layer)]

    def loss(self, task_cfg: Mapping, dataset, n_labels: int) -> Callable | None:
        """A ``compute_loss_func`` for the Trainer, or None for the model's own loss."""
        return None

    def dev_metric(self, id2label: dict[int, str], encoding: dict, targets: Sequence) -> Callable | None:
        """A ``compute_metrics`` that scores a dev split the way the reports do, or None."""
        return None

    def predict(self, model: TaskModel, jobs: Sequence[Job]) -> list:
        """This task's result for each sentence job (the engine batches the sentences of many documents; ``model``
        is the loaded folder, ``src.predict.engine.TaskModel``): what ``fill`` writes into the record."""
        raise NotImplementedError

    def fill(self, prediction: dict, results: Sequence | None, model: TaskModel | None) -> None:
        """Write this task's fields into a prediction record (``{"id", "entities", "sentences": [{"start", "end",
        "text"}]}``) from ``predict``'s result for each of its sentences; ``results`` and ``model`` are None when no
        model of this task was loaded, and the fields get their empty values (every record has every field)."""
        raise NotImplementedError

    def scheme_part(self, model: TaskModel) -> dict:
        """What the loaded ``model`` gives the Predictor's ``LabelScheme`` (fields by name): by default a sentence
        classifier's layer, ``{"sentence_layers": {sentence_field: labels}}``."""
        return {"sentence_layers": {self.sentence_field: tuple(model.labels)}} if self.sentence_field else {}

    def uncertainty(self, result: Any) -> tuple[float, str]:
        """How unsure the model is of one sentence, from ``predict``'s result for it, as ``(u in [0, 1], why)``;
        ``src.select`` asks for labels where it is largest (default: sure)."""
        return 0.0, ""

    def pseudo_labelled(self, documents: Sequence[dict], predictions: Sequence[dict], settings: Mapping) -> list[dict]:
        """Training records of a model's own most confident ``predictions`` of unlabelled ``documents`` (the same
        order; self-training, ``data.unlabelled``): a task without it refuses the option."""
        raise ConfigError(f"data.unlabelled: the {self.name} task has no self-training; set data.unlabelled=null")

    def finish(self, load: Callable[[], Predictor], records: Sequence[dict], task_cfg: Mapping) -> dict:
        """What the task adds to a freshly written model folder's ``newsframe.json`` after training (``{}``: none);
        ``load()`` gives a Predictor running that folder (the caller builds it: tasks sit below prediction)."""
        return {}

    def metrics(
        self,
        gold_records: Sequence[dict],
        pred_by_id: dict[str, dict],
        labels: Sequence[str] = (),
        none_label: str | None = None,
    ) -> dict:
        """``metrics.json`` of this layer: gold records that annotate it, their predictions by id; ``labels`` orders
        the per-label rows (the model's or the data config's), ``none_label`` is the label that frames nothing."""
        raise NotImplementedError

    def summary_lines(self, metrics: dict) -> list[str]:
        """Markdown list items a report and the console show under the headline (default: none)."""
        return []

    def report_sections(self, metrics: dict, figure: str | None = None) -> list[str]:
        """Markdown blocks a report shows after the per-label table; ``figure``: the file name of ``draw``'s image."""
        return []

    def error_sections(self, gold: Sequence[dict], pred: Sequence[dict], max_errors: int) -> list[str]:
        """Markdown blocks of the error analysis, at most ``max_errors`` items each (default: none)."""
        return []

    def draw(self, metrics: dict, path: str | Path, title: str) -> Path | None:
        """A figure of ``metrics`` written to ``path`` for the report, or None when the task draws none."""
        return None

    def score(
        self, gold_records: Sequence[dict], pred_records: Sequence[dict], labels: Sequence[str] = (), none_label=None
    ) -> dict:
        """``metrics`` of the gold records that annotate this layer, after checking the predictions cover exactly
        the gold documents."""
        pred_by_id = match_documents(gold_records, pred_records)
        gold_records = self.annotated(gold_records)  # a record without this layer has no gold to score against
        if not gold_records:
            raise ValueError(f"no gold record annotates {self.layer} (their 'annotated' field): nothing to score")
        return self.metrics(gold_records, pred_by_id, labels, none_label)

    def stored_calibration(
        self, calibration: dict, size_check: dict | None, suite_folds: Sequence[dict]
    ) -> tuple[dict, str | None]:
        """What of a CV setting's ``calibration`` entry a model folder gets, and why not (None: it may): by default
        as fitted. ``size_check``: ``nested_cv --calibration``'s file; ``suite_folds``: the fold models' behavioural
        suite results."""
        return calibration, None

    def baselines(self) -> dict[str, Baseline]:
        """What a CV report compares the model with, by name (``scoring.Baseline``; default: none)."""
        return {}

    def calibrate(
        self,
        gold_by_fold: dict[int, list[dict]],
        preds_by_fold: dict[int, list[dict]],
        load: Callable[[int], Predictor],
        labels: Sequence[str] = (),
        none_label: str | None = None,
    ) -> tuple[Calibrated, dict[int, list[dict]] | None]:
        """Cross-fitted calibration (``calibrate.Calibrated``) of a CV's held-out gold and out-of-fold predictions
        per fold (``load(fold)``: that fold's model, for a task whose predictions keep no logits) and, where the
        task also fits a decision bias, each fold's predictions re-decided with it (else None).
        ``calibrate.CalibrationError`` when it cannot be fitted."""
        raise CalibrationError(f"the {self.name} task has no calibration")

    def dataset(
        self,
        tokenizer,
        records: Sequence[dict],
        label2id: dict,
        max_length: int,
        stride: int,
        task_cfg: Mapping | None = None,
    ):
        """``(datasets.Dataset of the model's columns, the full encoding, the targets)`` of gold records."""
        inputs, targets = self.examples(records, task_cfg)
        encoding = self.encode(tokenizer, inputs, targets, label2id, max_length, stride)
        rows = zip(*(encoding[k] for k in MODEL_COLUMNS), strict=True)
        return as_dataset([dict(zip(MODEL_COLUMNS, row, strict=True)) for row in rows]), encoding, targets
