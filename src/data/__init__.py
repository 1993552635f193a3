"""Corpus records: loading, validation, conversions and folds.

Records are plain dicts with character offsets, exactly as in ``data/annotations/seeds.jsonl``::

    {"id": str, "source": str (optional), "text": str,
     "entities": [{"start": int, "end": int, "label": str}],
     "sentences": [{"start": int, "end": int, "stance": str | None}]}
"""
