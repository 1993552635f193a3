"""One self-contained HTML page of predictions (``--format html``, and ``report.html`` beside an evaluation's
``report.md``): a corpus summary, then each article with its entities highlighted and its sentences tinted.

The page makes no network request (inline CSS, no script, no font or image from elsewhere) and escapes every piece
of text it shows, attributes included: an article holding ``<script>`` or ``</div>`` renders as that text. Control
and bidirectional-override characters are shown as ``[U+202E]`` marks, so an id or a text cannot hide or reorder what
the reader sees.

Entities use displaCy's entity markup and colours (``<mark class="entity">TEXT<span>LABEL</span></mark>``, the
palette of ``spacy.displacy``), rendered here rather than by ``displacy.render``: the entities sit inside tinted
sentence spans, which displaCy's manual mode cannot nest, and displaCy leaves labels and titles unescaped.

Labels are the loaded models' (``LabelScheme``; without one, those the documents hold), never a fixed list: a corpus
with labels of its own gets its own legend, tints and columns. Stance tints are CSS classes by label position
(``stance-0``, ...), so no label name reaches the stylesheet.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from src.labels import MIXED, LabelScheme, doc_stance, layer_scores
from src.predict.framing import NO_STANCE, FramingTable
from src.predict.threshold import stance_score

# C0 and C1 controls but tab, newline and carriage return; the bidi marks, embeddings, overrides and isolates.
HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape(text: str, quote: bool = True) -> str:
    """``html.escape`` with the characters a reader cannot see (controls, bidi overrides) shown as ``[U+XXXX]``."""
    return html.escape(HIDDEN.sub(lambda m: f"[U+{ord(m.group()):04X}]", text), quote=quote)


# spacy.displacy.render.DEFAULT_LABEL_COLORS (spaCy 3): an entity type of that name gets displaCy's colour, any
# other the palette colour of its position, an entity type no model names displaCy's #ddd.
DISPLACY_COLORS = {
    "ORG": "#7aecec",
    "PRODUCT": "#bfeeb7",
    "GPE": "#feca74",
    "LOC": "#ff9561",
    "PERSON": "#aa9cfc",
    "NORP": "#c887fb",
    "FAC": "#9cc9cc",
    "EVENT": "#ffeb80",
    "LAW": "#ff8197",
    "LANGUAGE": "#ff8197",
    "WORK_OF_ART": "#f0d0ff",
    "DATE": "#bfe1d9",
    "TIME": "#bfe1d9",
    "MONEY": "#e4e7d2",
    "QUANTITY": "#e4e7d2",
    "ORDINAL": "#e4e7d2",
    "CARDINAL": "#e4e7d2",
    "PERCENT": "#e4e7d2",
}
ENTITY_PALETTE = ("#aa9cfc", "#c887fb", "#7aecec", "#feca74", "#ff9561", "#bfe1d9", "#ffeb80", "#9cc9cc", "#f0d0ff")
DEFAULT_ENTITY_COLOR = "#ddd"
# Stance tints: the framing labels in order, the none label grey, a mixed document lavender, unknown labels grey-ish.
STANCE_PALETTE = ("#f9d0d9", "#d3efc4", "#cfe3f7", "#fde2b8", "#e8d9c8", "#d5f0ee", "#f3d9f0")
NONE_TINT, NONE_BAR, MIXED_TINT, OTHER_TINT = "#eeeeee", "#cfcfcf", "#e6dcf5", "#e0e0e0"
EVIDENCE_SENTENCES = 3  # the document stance's deciding sentences shown per article
SUMMARY_ROWS = 15  # rows of "who is framed how" shown before the rest folds away
ENTITY_VERDICTS = {  # evaluation pages: how a predicted entity compares with the gold ones
    "wrong_type": "wrong type: same span, other type in gold",
    "wrong_span": "wrong boundary: overlaps a gold entity with other bounds",
    "spurious": "spurious: no gold entity there",
}

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;
color:#222;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:.2em 0}h3{font-size:1.05em;margin:.8em 0 .3em}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0}
th,td{border-bottom:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}td{white-space:nowrap}
td.n{text-align:right}
.legend,.summary{background:#fafafa;border:1px solid #e3e3e3;border-radius:6px;padding:.6em 1em;margin:.8em 0}
.legend p{margin:.3em 0}.swatch{border-radius:.35em;padding:.1em .5em;margin:0 .2em;display:inline-block}
.doc{border-top:2px solid #ccc;margin-top:1.5em;padding-top:.6em}.meta{color:#555;font-size:.9em}
.badge{border-radius:.35em;padding:.1em .5em;font-weight:bold}
.text{white-space:pre-wrap;line-height:2.5;direction:ltr}
.sent{border-radius:.3em;padding:.25em 0}
.sent.evidence,.evidence-swatch{outline:2px solid #444;outline-offset:1px}
.evidence-no{font-size:.7em;font-weight:bold;vertical-align:super;color:#444;margin-left:.15em}
.entity,.missed{padding:.45em .6em;margin:0 .25em;line-height:1;border-radius:.35em}
.entity-label{font-size:.8em;font-weight:bold;line-height:1;border-radius:.35em;vertical-align:middle;
margin-left:.5rem}
.low-score,.low-score-swatch{outline:2px dashed #777;outline-offset:1px}
.missed,.missed-swatch{background:#fff;border:2px dashed #d00}
.err-type,.err-span,.err-spurious,.err-swatch{box-shadow:0 0 0 2px #d00}
.err-stance,.err-stance-swatch{text-decoration:underline wavy #d00}
.layer,.layer-swatch{font-size:.7em;vertical-align:super;margin-left:.2em;padding:0 .25em;border:1px solid #999;
border-radius:.3em;color:#333;background:#fff}
.gold-stance,.gold-stance-swatch{font-size:.7em;font-weight:bold;color:#d00;vertical-align:super;margin-left:.2em}
.error{color:#b00;font-weight:bold}
.bar{display:inline-flex;width:110px;height:.9em;border:1px solid #ccc;vertical-align:middle}.bar span{height:100%}
.summary{display:grid;grid-template-columns:250px minmax(0,1fr);gap:0 2em}.summary ul{padding-left:1.2em}
ol.evidence-list{margin:.3em 0 .6em;padding-left:1.6em;font-size:.92em}
"""


class PageLabels:
    """The labels one page shows, in order, with their colours: entity types and stances of the models (or, without
    them, of the documents) and the stance that frames nothing (None when unknown)."""

    def __init__(
        self,
        entity_labels: Sequence[str],
        stance_labels: Sequence[str],
        none_label: str | None,
        layers: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.layers = {key: list(labels) for key, labels in (layers or {}).items()}  # other tasks' sentence layers
        self.entity_labels = list(dict.fromkeys(entity_labels))
        self.stance_labels = list(dict.fromkeys(stance_labels))
        self.none_label = none_label
        self.entity_colors = {
            label: DISPLACY_COLORS.get(label, ENTITY_PALETTE[i % len(ENTITY_PALETTE)])
            for i, label in enumerate(self.entity_labels)
        }
        framing = [label for label in self.stance_labels if label != none_label]
        self.tints = [
            NONE_TINT if label == none_label else STANCE_PALETTE[framing.index(label) % len(STANCE_PALETTE)]
            for label in self.stance_labels
        ]

    @classmethod
    def of(cls, documents: Sequence[dict], scheme: LabelScheme | None) -> PageLabels:
        """The scheme's labels, then any other label the documents hold (sorted); without a scheme, the documents'."""
        entities = sorted({e["label"] for d in documents for e in d.get("entities") or []})
        stances = sorted(
            {str(label) for d in documents for s in d.get("sentences") or [] for label in (s.get("scores") or {})}
            | {s["stance"] for d in documents for s in d.get("sentences") or [] if s.get("stance") is not None}
        )
        if scheme is None:
            return cls(entities, stances, None)
        known = list(scheme.stance_labels)
        return cls(
            [*scheme.entity_labels, *entities],
            [*known, *(x for x in stances if x not in known)],
            scheme.none_label,
            scheme.sentence_layers,
        )

    def entity_color(self, label: str) -> str:
        return self.entity_colors.get(label, DEFAULT_ENTITY_COLOR)

    def stance_class(self, stance: str | None) -> str:
        """The CSS class of a stance tint: by position, so a label (model data) never becomes a class name."""
        if stance is None:
            return ""
        if stance in self.stance_labels:
            return f"stance-{self.stance_labels.index(stance)}"
        return "stance-mixed" if stance == MIXED else "stance-other"

    def css(self) -> str:
        """The stance tints' rules (colours only: nothing of a label's name)."""
        rules = [f".stance-{i}{{background:{tint}}}" for i, tint in enumerate(self.tints)]
        rules += [f".stance-mixed{{background:{MIXED_TINT}}}", f".stance-other{{background:{OTHER_TINT}}}"]
        if self.none_label in self.stance_labels:
            rules.append(f".bar .stance-{self.stance_labels.index(self.none_label)}{{background:{NONE_BAR}}}")
        return "\n".join(rules) + "\n"

    def evidence_rule(self) -> str:
        none = self.none_label if self.none_label is not None else "the none label"
        return (
            f"Evidence: the document stance is the more frequent sentence stance other than {none} (a tie is mixed, "
            f"none is {none}); its evidence is the up to {EVIDENCE_SENTENCES} sentences predicted with that stance "
            "that have the highest score for it (for mixed: the highest-scoring sentences of the tied stances)."
        )


def attrs(**values: str | None) -> str:
    """Escaped HTML attributes (``class_`` -> ``class``, ``data_x`` -> ``data-x``); None values are left out."""
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value, quote=True)}"'
        for name, value in values.items()
        if value is not None
    )


def stance_badge(stance: str | None, labels: PageLabels) -> str:
    if stance is None:
        return '<span class="badge">no stance</span>'
    return f"<span{attrs(class_=f'badge {labels.stance_class(stance)}')}>{escape(stance)}</span>"


# ---------------------------------------------------------------------------------------------- one article


def evidence_sentences(prediction: dict, none_label: str | None, n: int = EVIDENCE_SENTENCES) -> list[int]:
    """Indices of the sentences that decide the document stance (``PageLabels.evidence_rule``), best first."""
    stance = prediction.get("doc_stance")
    sentences = prediction.get("sentences") or []
    if stance in (None, none_label):
        return []
    if stance == MIXED:
        counts = Counter(s["stance"] for s in sentences if s.get("stance") not in (None, none_label))
        top = max(counts.values(), default=0)
        wanted = {label for label, count in counts.items() if count == top}
    else:
        wanted = {stance}
    candidates = [i for i, s in enumerate(sentences) if s.get("stance") in wanted]
    return sorted(candidates, key=lambda i: (-(stance_score(sentences[i]) or 0.0), i))[:n]


def scores_title(sentence: dict) -> str:
    """A sentence's hover text: every stance score, best first."""
    scores = sentence.get("scores") or {}
    parts = [f"{label} {score:.2f}" for label, score in sorted(scores.items(), key=lambda kv: -kv[1])]
    if sentence.get("stance") is None:
        parts.insert(0, "no stance" + (" (below --min-score)" if scores else ""))
    if sentence.get("low_score"):
        parts.append("low score")
    return " · ".join(parts)


def entity_verdicts(pred: Sequence[dict], gold: Sequence[dict]) -> tuple[list[tuple[str, str]], list[dict]]:
    """For each predicted entity a verdict against the gold ones (``correct`` or a key of ``ENTITY_VERDICTS``) with
    a note naming the gold entity involved, and the gold entities no prediction touches (missed)."""
    exact = {(g["start"], g["end"]): g for g in gold}
    verdicts = []
    for p in pred:
        g = exact.get((p["start"], p["end"]))
        if g is not None:
            same = g["label"] == p["label"]
            verdicts.append(("correct", "") if same else ("wrong_type", f"gold: {g['label']}"))
            continue
        near = [g for g in gold if g["start"] < p["end"] and g["end"] > p["start"]]
        if near:
            verdicts.append(("wrong_span", "gold: " + "; ".join(f"{g['start']}-{g['end']} {g['label']}" for g in near)))
        else:
            verdicts.append(("spurious", ""))
    missed = [g for g in gold if not any(p["start"] < g["end"] and p["end"] > g["start"] for p in pred)]
    return verdicts, missed


def entity_mark(text: str, entity: dict, verdict: tuple[str, str] | None, labels: PageLabels) -> str:
    """displaCy's entity markup: ``<mark class="entity">TEXT<span class="entity-label">LABEL</span></mark>``."""
    label = entity["label"]
    classes = ["entity"]
    title = [label] + ([f"score {entity['score']:.2f}"] if isinstance(entity.get("score"), (int, float)) else [])
    if entity.get("low_score"):
        classes.append("low-score")
        title.append("low score")
    if verdict is not None and verdict[0] != "correct":
        classes.append({"wrong_type": "err-type", "wrong_span": "err-span", "spurious": "err-spurious"}[verdict[0]])
        title.append(ENTITY_VERDICTS[verdict[0]].split(":")[0] + (f" ({verdict[1]})" if verdict[1] else ""))
    style = f"background: {labels.entity_color(label)}"
    head = f"<mark{attrs(class_=' '.join(classes), data_label=label, style=style, title=' · '.join(title))}>"
    return f'{head}{escape(text)}<span class="entity-label">{escape(label)}</span></mark>'


def missed_mark(text: str, entity: dict) -> str:
    title = f"missed: gold {entity['label']}, not predicted"
    label = f'<span class="entity-label">{escape(entity["label"])}</span>'
    return f"<mark{attrs(class_='missed', data_label=entity['label'], title=title)}>{escape(text)}{label}</mark>"


def render_spans(
    text: str, start: int, end: int, marks: list[tuple[int, int, str, dict, object]], labels: PageLabels
) -> str:
    """``text[start:end]`` escaped, with marks (sorted, clipped to the range; one overlapping an earlier mark is
    shown as plain text) as HTML."""
    out, at = [], start
    for s, e, kind, entity, verdict in marks:
        s, e = max(s, start), min(e, end)
        if s < at or s >= e:
            continue
        out.append(escape(text[at:s]))
        piece = text[s:e]
        out.append(missed_mark(piece, entity) if kind == "missed" else entity_mark(piece, entity, verdict, labels))
        at = e
    out.append(escape(text[at:end]))
    return "".join(out)


def render_article(
    number: int,
    prediction: dict,
    text: str,
    labels: PageLabels,
    gold: dict | None = None,
    check: Sequence[str] = (),
) -> str:
    """One ``<article>``: heading, document stance with its evidence, then the text. With ``gold`` and ``check``
    (``"ner"``, ``"stance"``), errors against the gold record are marked."""
    doc_id = str(prediction.get("id"))
    anchor = f"doc-{number}"
    if "error" in prediction:
        return error_article(doc_id, anchor, prediction["error"])
    sentences = sorted(prediction.get("sentences") or [], key=lambda s: s["start"])
    entities = sorted(prediction.get("entities") or [], key=lambda e: (e["start"], e["end"]))
    gold_stance = {(s["start"], s["end"]): s.get("stance") for s in (gold or {}).get("sentences") or []}
    marks = entity_marks(entities, gold if "ner" in check else None)
    ranked = evidence_sentences({**prediction, "sentences": sentences}, labels.none_label)
    evidence = {i: n for n, i in enumerate(ranked, start=1)}
    body, at, mark_at = [], 0, 0

    def marks_before(end: int) -> list:
        """The marks starting before ``end`` not yet taken (marks are sorted by start)."""
        nonlocal mark_at
        taken = []
        while mark_at < len(marks) and marks[mark_at][0] < end:
            taken.append(marks[mark_at])
            mark_at += 1
        return taken

    for i, sent in enumerate(sentences):
        s, e = sent["start"], sent["end"]
        if s < at:  # overlapping sentence spans: show the text once
            continue
        body.append(render_spans(text, at, s, marks_before(s), labels))  # text between sentences
        want = gold_stance.get((s, e)) if gold is not None and "stance" in check else None
        inner = render_spans(text, s, e, marks_before(e), labels)
        body.append(sentence_span(sent, inner, f"{anchor}-s{i}", labels, want, evidence.get(i)))
        at = e
    body.append(render_spans(text, at, len(text), marks_before(len(text) + 1), labels))
    return "".join(
        [
            f"<article{attrs(class_='doc', id=anchor)}>",
            f"<h2>{escape(doc_id)}</h2>",
            article_header(prediction, sentences, entities, gold, check, evidence, anchor, labels),
            f'<div class="text">{"".join(body)}</div>',
            "</article>",
        ]
    )


def error_article(doc_id: str, anchor: str, err: dict) -> str:
    """The article of a document that could not be predicted: where it came from and why."""
    where = err.get("file") if err.get("line") is None else f"{err.get('file')}:{err.get('line')}"
    return (
        f'<article class="doc"{attrs(id=anchor)}><h2>{escape(doc_id)}</h2>'
        f'<p class="error">could not be predicted: {escape(str(where))}: {escape(str(err.get("reason")))}</p>'
        "</article>"
    )


def entity_marks(entities: list[dict], gold: dict | None) -> list[tuple]:
    """``(start, end, kind, entity, verdict)`` of the predicted entities and, against ``gold``, the missed gold
    ones, sorted by position."""
    if gold is not None:
        gold_entities = sorted(gold.get("entities") or [], key=lambda e: (e["start"], e["end"]))
        verdicts, missed = entity_verdicts(entities, gold_entities)
    else:
        verdicts, missed = [None] * len(entities), []
    return sorted(
        [(e["start"], e["end"], "entity", e, v) for e, v in zip(entities, verdicts, strict=True)]
        + [(g["start"], g["end"], "missed", g, None) for g in missed],
        key=lambda m: (m[0], m[1]),
    )


def sentence_span(
    sent: dict, inner: str, span_id: str, labels: PageLabels, want: str | None, evidence_no: int | None
) -> str:
    """One sentence's ``<span>``: its stance class and scores as a title, a wrong stance against the gold ``want``,
    and its number when it is evidence for the document stance."""
    classes = ["sent", labels.stance_class(sent.get("stance"))]
    title = scores_title(sent)
    wrong = want if want is not None and want != sent.get("stance") else None
    if wrong:
        classes.append("err-stance")
        title = f"wrong stance, gold: {want} · {title}"
    if sent.get("low_score"):
        classes.append("low-score")
    if evidence_no is not None:
        classes.append("evidence")
        title = f"evidence {evidence_no} for the document stance · {title}"
    tag = attrs(class_=" ".join(c for c in classes if c), id=span_id, data_stance=sent.get("stance"), title=title)
    after = f'<sup class="evidence-no">{evidence_no}</sup>' if evidence_no is not None else ""
    after += f"<sup{attrs(class_='gold-stance')}>gold: {escape(wrong)}</sup>" if wrong else ""
    return f"<span{tag}>{inner}</span>{after}{layer_marks(sent, labels)}"


def layer_marks(sent: dict, labels: PageLabels) -> str:
    """A sentence's labels in other tasks' sentence layers (``quote: yes``), each with its scores as a title."""
    marks = []
    for key in labels.layers:
        if sent.get(key) is None:
            continue
        scores = layer_scores(sent, key)
        title = " · ".join(f"{label} {score:.2f}" for label, score in sorted(scores.items(), key=lambda kv: -kv[1]))
        marks.append(
            f"<sup{attrs(class_='layer', data_layer=key, title=title or None)}>{escape(key)}: "
            f"{escape(str(sent[key]))}</sup>"
        )
    return "".join(marks)


def article_header(
    prediction: dict,
    sentences: list[dict],
    entities: list[dict],
    gold: dict | None,
    check: Sequence[str],
    evidence: dict[int, int],
    anchor: str,
    labels: PageLabels,
) -> str:
    """The document stance (and gold's, on evaluation pages), counts, and the evidence sentences as a list."""
    stance = prediction.get("doc_stance")
    counts = Counter(s.get("stance") or NO_STANCE for s in sentences)
    parts = [f"Document stance: {stance_badge(stance, labels)}"]
    if gold is not None and "stance" in check and labels.none_label is not None:
        gold_stances = (s["stance"] for s in gold.get("sentences") or [] if s.get("stance") is not None)
        want = doc_stance(gold_stances, labels.none_label)
        mark = "" if want == stance else ' <span class="error">wrong</span>'
        parts.append(f"gold: {stance_badge(want, labels)}{mark}")
    parts.append(
        f"{len(sentences)} sentences ("
        + ", ".join(f"{escape(label)} {n}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        + f"), {len(entities)} entities"
    )
    html = [f'<p class="meta">{" · ".join(parts)}</p>']
    if evidence:
        items = []
        for i, n in sorted(evidence.items(), key=lambda kv: kv[1]):
            sent = sentences[i]
            score = stance_score(sent)
            link = attrs(href=f"#{anchor}-s{i}")
            items.append(
                f"<li{attrs(value=str(n))}><a{link}>{escape(' '.join(sent['text'].split()))}</a> "
                f"({escape(str(sent.get('stance')))} {0.0 if score is None else score:.2f})</li>"
            )
        html.append(f'<ol class="evidence-list">{"".join(items)}</ol>')
    elif stance is not None and stance == labels.none_label:
        framing = [label for label in labels.stance_labels if label != labels.none_label]
        html.append(f'<p class="meta">No sentence was predicted {escape(" or ".join(framing))}.</p>')
    return "".join(html)


# ---------------------------------------------------------------------------------------------- the page


def legend(labels: PageLabels, evaluation: bool) -> str:
    """What the colours, outlines and hover texts mean (its samples use classes of their own, so that counting
    ``entity``, ``sent``, ``missed`` ... elements counts the articles' only)."""
    ents = "".join(
        f"<span{attrs(class_='swatch', style=f'background: {labels.entity_color(label)}')}>{escape(label)}</span>"
        for label in labels.entity_labels
    )
    tints = "".join(
        f"<span{attrs(class_=f'swatch {labels.stance_class(s)}')}>{escape(s)}</span>"
        for s in [*labels.stance_labels, MIXED]
    )
    lines = [
        f"<p><strong>Entities</strong> (highlighted, type after the name; hover: score): {ents}</p>",
        f"<p><strong>Sentences</strong> are tinted by their predicted stance (hover: each stance's score): {tints}</p>",
        f'<p><span class="swatch evidence-swatch">outlined</span> with a number: {escape(labels.evidence_rule())}</p>',
        '<p><span class="swatch low-score-swatch">dashed outline</span>: score under --flag-below. '
        "A sentence left untinted has no stance (no stance model, or under --min-score).</p>",
    ]
    for key, layer_labels in labels.layers.items():
        lines.append(
            f"<p><strong>{escape(key)}</strong> (after each sentence; hover: each label's score): "
            + "".join(f'<span class="layer-swatch">{escape(key)}: {escape(label)}</span>' for label in layer_labels)
            + "</p>"
        )
    if evaluation:
        lines.append(
            "<p><strong>Errors against gold</strong>: "
            '<span class="swatch missed-swatch">missed</span> gold entity not predicted; '
            '<span class="swatch err-swatch">red ring</span> predicted entity with the wrong type, wrong boundary '
            "or no gold entity (spurious; hover says which); "
            '<span class="err-stance-swatch">wavy underline</span> and '
            '<sup class="gold-stance-swatch">gold: …</sup> a sentence with the wrong stance.</p>'
        )
    return f'<section class="legend"><h3>Legend</h3>{"".join(lines)}</section>'


def framing_table(table: FramingTable, labels: PageLabels) -> str:
    """ "Who is framed how": per entity group, the stances of the sentences that mention it (with a bar)."""
    rows, columns = table.rows(), table.columns()
    if not rows:
        return "<p>No entities.</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in ["entity", "type", "sentences", *columns, ""])

    def row_html(row: dict) -> str:
        total = max(row["sentences"], 1)
        also = f"also written: {', '.join(row['variants'])}" if row["variants"] else None
        swatch = attrs(class_="swatch", style=f"background: {labels.entity_color(row['label'])}")
        bar = "".join(
            f"<span{attrs(class_=labels.stance_class(c), style=f'width: {100 * row[c] / total:.1f}%')}></span>"
            for c in columns
            if row[c] and c != NO_STANCE
        )
        cells = [
            f"<td{attrs(title=also)}>{escape(row['entity'])}</td>",
            f"<td><span{swatch}>{escape(row['label'])}</span></td>",
            f'<td class="n">{row["sentences"]}</td>',
            *(f'<td class="n">{row[c]}</td>' for c in columns),
            f'<td><span class="bar">{bar}</span></td>',
        ]
        return f"<tr>{''.join(cells)}</tr>"

    shown = "".join(row_html(r) for r in rows[:SUMMARY_ROWS])
    html = f"<table><tr>{head}</tr>{shown}</table>"
    if len(rows) > SUMMARY_ROWS:
        more = "".join(row_html(r) for r in rows[SUMMARY_ROWS:])
        folded = f"<table><tr>{head}</tr>{more}</table>"
        html += f"<details><summary>{len(rows) - SUMMARY_ROWS} more</summary>{folded}</details>"
    return html


def summary(predictions: Sequence[dict], table: FramingTable, labels: PageLabels) -> str:
    """Articles by document stance, an index of the articles, and who is framed how."""
    stances = Counter(
        "could not be predicted" if "error" in p else (p.get("doc_stance") or "no stance") for p in predictions
    )
    order = [*labels.stance_labels, MIXED]
    by_stance = "".join(
        f'<tr><td>{stance_badge(s, labels) if s in order else escape(s)}</td><td class="n">{n}</td></tr>'
        for s, n in sorted(stances.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))
    )
    index = "".join(
        f"<li><a{attrs(href=f'#doc-{n}')}>{escape(str(p.get('id')))}</a> "
        + ("(error)" if "error" in p else f"{stance_badge(p.get('doc_stance'), labels)}")
        + "</li>"
        for n, p in enumerate(predictions)
    )
    opened = " open" if len(predictions) <= 20 else ""
    return (
        '<section class="summary"><div><h3>Articles by document stance</h3>'
        f"<table><tr><th>document stance</th><th>articles</th></tr>{by_stance}</table>"
        f"<details{opened}><summary>{len(predictions)} article(s)</summary><ul>{index}</ul></details></div>"
        "<div><h3>Who is framed how</h3>"
        '<p class="meta">Per entity (mentions grouped by normalised name and type: case, possessive \'s, and within an '
        "article a one-word mention of a longer name of the same type, e.g. Kim &rarr; Kim Jong-un), the predicted "
        "stance of the sentences that mention it (hover a name: its other spellings).</p>"
        f"{framing_table(table, labels)}</div></section>"
    )


def render_page(
    documents: Sequence[dict],
    title: str = "newsframe predictions",
    gold: Sequence[dict] | None = None,
    check: Sequence[str] = (),
    note: str = "",
    scheme: LabelScheme | None = None,
) -> str:
    """The whole page for prediction records that carry their ``text`` (or, on evaluation pages, whose ``gold``
    record of the same id does); ``check`` names what to mark against gold (``"ner"``, ``"stance"``). ``scheme``:
    the models' labels (``Predictor.scheme``), shown in their order; without it, the labels the documents hold."""
    gold_by_id = {str(g["id"]): g for g in gold or []}
    labels = PageLabels.of(documents, scheme)
    table = FramingTable(labels.stance_labels)
    for doc in documents:
        table.add(doc)
    articles = []
    for number, doc in enumerate(documents):
        g = gold_by_id.get(str(doc.get("id")))
        text = doc.get("text") if doc.get("text") is not None else (g or {}).get("text", "")
        articles.append(render_article(number, doc, text, labels, g, check if g is not None else ()))
    note_html = f'<p class="meta">{escape(note)}</p>' if note else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}{labels.css()}</style></head><body>"
        f"<h1>{escape(title)}</h1>{note_html}"
        f"{legend(labels, evaluation=bool(gold) and bool(check))}"
        f"{summary(documents, table, labels)}"
        f"{''.join(articles)}</body></html>\n"
    )
