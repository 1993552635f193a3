"""A stance idea of issue 16 compared on the LOAO folds: one encoder for both tasks (multi-task), which would also
halve the CPU cost of prediction when both models run.

For each fold, one model is trained on the training articles' sentences with two heads on a shared encoder: the NER
token head and a stance head on the mean-pooled sentence (the way sentence-transformers pools MiniLM). The encoder
and the token head start from the NER default's warm start (``runs/conll2003-onto/run``); the stance head starts
random. Each sentence is one example carrying both its IOB2 word tags and its stance (if it has one); the loss is the
NER cross-entropy plus the stance cross-entropy weighted by inverse class frequency, as ``task=stance`` weights it.
The other settings are the tuned single-task ones (10 epochs, batch 8, linear schedule with 10 % warm-up).

Fixed protocol, set before any figure was seen: two learning rates, each task's tuned one (NER 1e-4, stance 3e-5),
seed 42; the better on the mean of NER macro-F1 and stance macro-F1 then at seeds 7 and 1234. It is compared with
the single-task defaults on the same folds: NER decoded as the Predictor does (valid IOB2), stance as the classifier
alone (the prototype head could sit on either encoder). Prints pooled figures over the five held-out articles.

    python scripts/probe_multitask.py --lr 1e-4 --seed 42
    python scripts/probe_multitask.py --lr 1e-4 --seed 42 --stance-share 0    # the control: NER alone, same harness

Result (2026-12-02, the one-epoch warm start of that day; NER micro / macro, stance macro / leverage): lr 1e-4
0.848 / 0.593, 0.582 / 0.368; lr 3e-5 0.736 / 0.471, 0.587 / 0.400. The control gives NER 0.855 / 0.749 (the
pipeline's own CV: 0.866 / 0.745), so the harness is faithful and the shared encoder costs NER its LOC and EVENT and
stance 0.12 macro-F1 against the classifier alone (0.700). Not kept; no further seeds (the protocol's second step was
moot with both tasks far below).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.convert import ner_examples
from src.data.folds import leave_one_article_out
from src.data.records import load_records
from src.features import IGNORE_INDEX, encode_ner, words_from_windows
from src.labels import ENTITY_LABELS, STANCE_LABELS, decode_iob2, iob2_tags
from src.tasks import class_weights

ROOT = Path(__file__).resolve().parents[1]


class MultiTask(nn.Module):
    """A token-classification model (encoder + token head) with a stance head on the mean-pooled encoder output."""

    def __init__(self, ner_model: nn.Module, n_stance: int, stance_weights: torch.Tensor, share: float = 1.0) -> None:
        super().__init__()
        self.share = share  # the stance loss's factor; 0 trains NER alone (the control)
        self.ner = ner_model
        hidden = ner_model.config.hidden_size
        self.stance_head = nn.Sequential(nn.Dropout(ner_model.config.hidden_dropout_prob), nn.Linear(hidden, n_stance))
        self.register_buffer("stance_weights", stance_weights)

    def forward(self, input_ids, attention_mask, labels=None, stance_labels=None):
        hidden = self.ner.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        token_logits = self.ner.classifier(self.ner.dropout(hidden))
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        stance_logits = self.stance_head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
        loss = None
        if labels is not None:
            loss = token_logits.new_zeros(())
            if (labels != IGNORE_INDEX).any():
                loss = loss + nn.functional.cross_entropy(token_logits.flatten(0, 1), labels.flatten())
            has = stance_labels != IGNORE_INDEX
            if has.any() and self.share:
                loss = loss + self.share * nn.functional.cross_entropy(
                    stance_logits[has], stance_labels[has], weight=self.stance_weights
                )
        return {"loss": loss, "token_logits": token_logits, "stance_logits": stance_logits}


def examples(records: list[dict]) -> tuple[list[dict], list]:
    """NER examples (one per gold sentence) with the sentence's stance index, or IGNORE_INDEX without one."""
    stance = {(r["id"], s["start"]): s["stance"] for r in records for s in r["sentences"]}
    out = ner_examples(records)
    targets = [stance[(e["doc_id"], e["sent_start"])] for e in out]
    return out, [IGNORE_INDEX if t is None else STANCE_LABELS.index(t) for t in targets]


def encode(tokenizer, records: list[dict], label2id: dict, max_length: int) -> tuple[dict, list[dict], list[int]]:
    """Windows as ``task=ner`` makes them (256 sub-tokens, stride 32), each with its sentence's stance."""
    exs, stances = examples(records)
    words, tags = [e["words"] for e in exs], [e["tags"] for e in exs]
    enc = encode_ner(tokenizer, words, tags, label2id, max_length, 32)
    enc["stance_labels"] = [stances[i] for i in enc["example_index"]]
    return enc, exs, stances


class Collator:
    """Pads the token columns as the NER task does and stacks the stance labels."""

    def __init__(self, tokenizer) -> None:
        from transformers import DataCollatorForTokenClassification

        self.tokens = DataCollatorForTokenClassification(tokenizer)

    def __call__(self, features: list[dict]) -> dict:
        stance = torch.tensor([f.pop("stance_labels") for f in features])
        return {**self.tokens(features), "stance_labels": stance}


def fold_predictions(
    model: MultiTask, tokenizer, enc: dict, n_words: list[int], batch: int = 32
) -> tuple[list, np.ndarray]:
    """Per-word NER logits per sentence and per-window stance logits, in eval mode."""
    model.eval()
    token, stance = [], []
    with torch.no_grad():
        for i in range(0, len(enc["input_ids"]), batch):
            ids = enc["input_ids"][i : i + batch]
            out = model(**tokenizer.pad({"input_ids": ids}, return_tensors="pt"))
            token += [row[: len(x)].numpy() for row, x in zip(out["token_logits"], ids, strict=True)]
            stance.append(out["stance_logits"].numpy())
    words = words_from_windows(token, enc["word_ids"], enc["example_index"], n_words)
    return words, np.concatenate(stance)


def run_fold(
    gold: list[dict], k: int, lr: float, seed: int, base: str, epochs: float = 10, share: float = 1.0
) -> tuple[list, list, list, list]:
    """``(gold tags, predicted tags, gold stances, predicted stances)`` of fold ``k``'s held-out article."""
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    train, test = leave_one_article_out(gold, k)
    tokenizer = AutoTokenizer.from_pretrained(base)
    ner_model = AutoModelForTokenClassification.from_pretrained(base, use_safetensors=True)
    tags = [ner_model.config.id2label[i] for i in range(ner_model.config.num_labels)]
    assert sorted(tags) == sorted(iob2_tags(ENTITY_LABELS)), tags
    label2id = {t: i for i, t in enumerate(tags)}
    max_length = min(256, ner_model.config.max_position_embeddings)
    enc, _, stances = encode(tokenizer, train, label2id, max_length)
    weights = class_weights([s for s in stances if s != IGNORE_INDEX], len(STANCE_LABELS))
    model = MultiTask(ner_model, len(STANCE_LABELS), weights, share)
    columns = ("input_ids", "attention_mask", "labels", "stance_labels")
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            learning_rate=lr,
            num_train_epochs=epochs,
            per_device_train_batch_size=8,
            warmup_steps=0.1,
            weight_decay=0.01,
            lr_scheduler_type="linear",
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            disable_tqdm=True,
            use_cpu=True,
            seed=seed,
            label_names=["labels", "stance_labels"],
        )
        data = Dataset.from_dict({c: enc[c] for c in columns})
        Trainer(model=model, args=args, train_dataset=data, data_collator=Collator(tokenizer)).train()

    test_enc, test_exs, test_stances = encode(tokenizer, test, label2id, max_length)
    words, stance_logits = fold_predictions(model, tokenizer, test_enc, [len(e["words"]) for e in test_exs])
    predicted = [[tags[i] for i in decode_iob2(w, tags)] for w in words]
    # A sentence's stance: the mean of its windows' logits.
    per_sentence = np.zeros((len(test_exs), len(STANCE_LABELS)))
    np.add.at(per_sentence, test_enc["example_index"], stance_logits)
    has = [i for i, s in enumerate(test_stances) if s != IGNORE_INDEX]
    return (
        [e["tags"] for e in test_exs],
        predicted,
        [test_stances[i] for i in has],
        [int(per_sentence[i].argmax()) for i in has],
    )


def main() -> None:
    from seqeval.metrics import classification_report, f1_score
    from seqeval.scheme import IOB2
    from sklearn.metrics import f1_score as sk_f1

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--stance-share", type=float, default=1.0, help="the stance loss's factor; 0: NER alone")
    parser.add_argument("--folds", type=int, nargs="*", help="default: every fold")
    parser.add_argument("--base", default=str(ROOT / "runs/conll2003-onto/run/model"))
    parser.add_argument("--data", default=str(ROOT / "data/annotations/seeds.jsonl"))
    args = parser.parse_args()
    gold = load_records(Path(args.data), entity_labels=ENTITY_LABELS, stance_labels=STANCE_LABELS)
    y_true, y_pred, s_true, s_pred = [], [], [], []
    folds = args.folds if args.folds is not None else list(range(len(gold)))
    for k in folds:
        t, p, st, sp = run_fold(gold, k, args.lr, args.seed, args.base, args.epochs, args.stance_share)
        y_true += t
        y_pred += p
        s_true += st
        s_pred += sp
        print(f"fold {k}: NER micro {f1_score(t, p, mode='strict', scheme=IOB2):.3f}", flush=True)
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_type = {k: v["f1-score"] for k, v in report.items() if k in ENTITY_LABELS}
    stance = sk_f1(s_true, s_pred, labels=range(len(STANCE_LABELS)), average=None, zero_division=0)
    print(
        f"multi-task, lr {args.lr:g}, stance share {args.stance_share:g}, seed {args.seed}, "
        f"pooled over {len(folds)} held-out articles:"
    )
    print(
        f"  NER micro {report['micro avg']['f1-score']:.3f}, macro {np.mean(list(per_type.values())):.3f} ("
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(per_type.items()))
        + ")"
    )
    print(
        f"  stance macro {stance.mean():.3f} ("
        + ", ".join(f"{k} {v:.3f}" for k, v in zip(STANCE_LABELS, stance, strict=True))
        + ")"
    )


if __name__ == "__main__":
    main()
