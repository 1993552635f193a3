"""The prediction service: ``python -m src.serve --ner runs/ner --stance runs/stance`` (FastAPI on uvicorn).

``POST /v1/annotate`` answers each document with the record ``scripts/predict.py --format jsonl`` writes for it;
requests arriving together share one ``Predictor`` call (``batcher``), and every resource is bounded by a flag
(``app.Limits``), so overload gets a quick 503 instead of unbounded memory. Scale out with stateless replicas behind
any load balancer; the models are fixed at start, so replicas started alike answer alike.
"""
