"""Active learning: which unlabelled sentences to label next (``python -m src.select``).

``rank`` scores sentences and picks a diverse top k (pure functions over plain data, reused by
``scripts/simulate_selection.py``); ``__main__`` runs the models over articles and writes Label Studio tasks.
"""
