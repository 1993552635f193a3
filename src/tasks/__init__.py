"""The tasks, each one object that owns what differs between them, so no stage branches on a task's name.

A task knows its labels (from the data config), how records become examples and sub-word windows, the collator,
the loss, the metric that selects a model on a dev split, the headline metric, the transformers model class and the
pipeline tag; for prediction, how its model's outputs become record fields (``predict``, ``fill``) and how unsure it
is of a sentence (``uncertainty``, what ``src.select`` ranks by); for evaluation, its metrics, report sections,
figure, baselines and calibration. One module per task
(``ner.py``, ``stance.py``; what they share in ``scoring.py`` and ``calibrate.py``), registered here:
``get_task("ner")`` by name (configs), ``task_of_config(config)`` for a model folder. A task of another package is a
plug-in: an entry point of group ``newsframe.tasks`` naming its ``Task`` object, found when a name is not built in
(docs/adding-a-task.md).

EXAMPLE: ``get_task("stance").labels({"stance_labels": ["a", "b"]}) -> ["a", "b"]``
"""

from __future__ import annotations

from importlib.metadata import entry_points

from transformers import PretrainedConfig

from src.errors import ConfigError

from .base import MODEL_COLUMNS, Task
from .ner import NerTask
from .stance import StanceTask, class_weights

__all__ = [
    "MODEL_COLUMNS",
    "NER",
    "STANCE",
    "TASKS",
    "NerTask",
    "StanceTask",
    "Task",
    "class_weights",
    "get_task",
    "load_plugins",
    "task_of_config",
]

NER = NerTask(
    "ner",
    "token-classification",
    "ForTokenClassification",
    "micro_f1",
    "entities",
    pipeline_kwargs=', aggregation_strategy="first"',
    title="Entity",
    decoding_note="keeps each sentence's tags the most probable valid IOB2 sequence (the pipeline decides word by "
    "word)",
)
STANCE = StanceTask(
    "stance", "text-classification", "ForSequenceClassification", "macro_f1", "stance", has_none_label=True
)
TASKS: dict[str, Task] = {task.name: task for task in (NER, STANCE)}
PLUGINS = "newsframe.tasks"  # the entry point group of tasks from other packages
_loaded: set[str] = set()  # the plug-ins in TASKS


def load_plugins() -> None:
    """Add the tasks of installed plug-ins (entry points of group ``newsframe.tasks``) to ``TASKS``; a plug-in that
    fails to load, is no ``Task`` or takes a name in use is a ``ConfigError`` naming it."""
    for point in entry_points(group=PLUGINS):
        if point.name in _loaded:
            continue
        try:
            task = point.load()
        except Exception as err:
            raise ConfigError(f"task plug-in {point.name} ({point.value}): {type(err).__name__}: {err}") from None
        if not isinstance(task, Task) or task.name != point.name:
            raise ConfigError(f"task plug-in {point.name} ({point.value}): not a Task named {point.name!r}")
        if point.name in TASKS:
            raise ConfigError(f"task plug-in {point.name} ({point.value}): the name of a task already registered")
        TASKS[task.name] = task
        _loaded.add(task.name)


def get_task(name: str) -> Task:
    if name not in TASKS:
        load_plugins()
    if name not in TASKS:
        raise ConfigError(f"task={name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def task_of_config(config: PretrainedConfig, where: str = "the model") -> Task:
    """The task of a model from its architecture (``BertForTokenClassification`` -> NER)."""
    for task in TASKS.values():
        if any(arch.endswith(task.architecture_suffix) for arch in config.architectures or []):
            return task
    raise ValueError(f"{where}: not a newsframe model (architectures {config.architectures})")
