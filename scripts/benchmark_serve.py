"""Throughput and latency of the prediction service (``python -m src.serve``) beside ``scripts/predict.py``.

    python scripts/benchmark_serve.py [--ner runs/ner] [--stance runs/stance] [--words 50000] [--corpus FILE.jsonl]

Texts: the articles of ``data/annotations/seeds.jsonl`` (or ``--corpus``, JSONL with a ``text`` per line) repeated
until they hold ``--words`` words (the project's words: ``src.data.words.word_spans``). One run does both:

- ``scripts/predict.py --format jsonl`` on those texts as one JSONL file, in a subprocess; its start-up (imports,
  model loading), measured on a one-document input, is taken off, so its words/s is prediction alone;
- the service, started as a subprocess on a free loopback port and warmed up (``/readyz``), then sent one article
  per request by 1, 8 and 32 concurrent clients (``--concurrency``): words/s over the wall time, and each request's
  latency (p50, p95).

The figure is the service's words/s over predict.py's: what HTTP, JSON and micro-batching cost (or gain, with
concurrency) against the batch command. Client and server share the machine's cores: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"
READY_S = 600  # a first start exports the models to ONNX


def load_texts(corpus: Path, words: int) -> list[str]:
    """The corpus's texts, repeated in order until they hold ``words`` words (at least one text)."""
    from src.data.words import word_spans

    texts = []
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if line.strip():
            text = json.loads(line).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
    if not texts:
        raise SystemExit(f"{corpus}: no record with a non-empty text")
    counts = [len(word_spans(text)) for text in texts]
    chosen, total, i = [], 0, 0
    while total < words or not chosen:
        chosen.append(texts[i % len(texts)])
        total += counts[i % len(texts)]
        i += 1
    return chosen


def count_words(texts: list[str]) -> int:
    from src.data.words import word_spans

    return sum(len(word_spans(text)) for text in texts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_args(args: argparse.Namespace) -> list[str]:
    extra = ["--threads", str(args.threads)] if args.threads else []
    return ["--ner", args.ner, "--stance", args.stance, *extra]


def time_predict_py(args: argparse.Namespace, texts: list[str], folder: Path) -> tuple[float, float]:
    """Seconds of ``scripts/predict.py`` on ``texts`` and on one short document (its start-up)."""

    def run(records: list[dict], name: str) -> float:
        source = folder / f"{name}.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        command = [sys.executable, str(ROOT / "scripts" / "predict.py"), *model_args(args), "--overwrite"]
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "-o", str(folder / f"{name}.out.jsonl"), str(source)], cwd=ROOT, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if done.returncode not in (0, 1):
            raise SystemExit(f"predict.py failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return seconds

    run([{"id": "warm", "text": texts[0][:200]}], "warm")  # a first run may export the models to ONNX
    startup = run([{"id": "one", "text": texts[0][:200]}], "one")
    whole = run([{"id": str(i), "text": t} for i, t in enumerate(texts)], "all")
    return whole, startup


class Service:
    """``python -m src.serve`` on a free loopback port, with limits wide enough for the benchmark."""

    def __init__(self, args: argparse.Namespace, concurrency: int, folder: Path) -> None:
        import httpx

        self.url = f"http://127.0.0.1:{free_port()}"
        limits = ["--max-in-flight", str(max(64, 2 * concurrency)), "--queue-size", str(max(64, 2 * concurrency))]
        limits += ["--max-chars", "100000000", "--max-body-bytes", "500000000", "--timeout-s", "600"]
        limits += ["--batch-size", str(args.batch_size), "--batch-wait-ms", str(args.batch_wait_ms)]
        command = [sys.executable, "-m", "src.serve", *model_args(args), "--port", self.url.rsplit(":", 1)[1]]
        self.log = folder / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([*command, *limits], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_S
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the service exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the service was not ready within {READY_S} s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def drive(url: str, texts: list[str], concurrency: int) -> tuple[float, list[float], int]:
    """Send every text as one request with ``concurrency`` clients: wall seconds, latencies, failed requests."""
    import httpx

    pending = list(reversed(texts))
    latencies: list[float] = []
    failed = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failed
        while pending:
            text = pending.pop()
            start = time.perf_counter()
            response = await http.post(f"{url}/v1/annotate", json={"documents": [{"text": text}]})
            latencies.append(time.perf_counter() - start)
            failed += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=600) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, failed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ner", default="runs/ner", help="NER run or model folder (default runs/ner)")
    parser.add_argument("--stance", default="runs/stance", help="stance run or model folder (default runs/stance)")
    parser.add_argument("--corpus", type=Path, default=SEEDS, help="JSONL with a text per line (default: the seeds)")
    parser.add_argument("--words", type=int, default=50_000, help="repeat the texts to this many words")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch-size", type=int, default=32, help="the service's --batch-size")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="the service's --batch-wait-ms")
    parser.add_argument("--threads", type=int, default=0, help="inference threads of both (0: one per core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for path in (args.ner, args.stance):
        if not Path(path).exists():
            raise SystemExit(f"{path}: no such checkpoint (train one, or pass --ner/--stance)")
    texts = load_texts(args.corpus, args.words)
    words = count_words(texts)
    print(
        f"# Service speed\n\n{time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} cores · load average "
        f"{os.getloadavg()[0]:.2f} · {len(texts)} documents, {words:,} words from {args.corpus} · one document per "
        f"request · service --batch-size {args.batch_size} --batch-wait-ms {args.batch_wait_ms:g}\n"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        whole, startup = time_predict_py(args, texts, folder)
        baseline = words / max(whole - startup, 1e-9)
        rows.append(("predict.py", "-", baseline, None, None, 0))
        print(f"predict.py: {whole:.1f} s in all, {startup:.1f} s of it start-up", file=sys.stderr, flush=True)
        service = Service(args, max(args.concurrency), folder)
        try:
            asyncio.run(drive(service.url, texts[: min(len(texts), 8)], 8))  # warm the connections and sessions
            for concurrency in args.concurrency:
                seconds, latencies, failed = asyncio.run(drive(service.url, texts, concurrency))
                rows.append((
                    "service",
                    str(concurrency),
                    words / seconds,
                    1000 * statistics.median(latencies),
                    1000 * percentile(latencies, 0.95),
                    failed,
                ))  # fmt: skip
                print(f"concurrency {concurrency}: {seconds:.1f} s", file=sys.stderr, flush=True)
        finally:
            service.stop()
    print("| system | concurrency | words/s | p50 ms | p95 ms | failed requests | ÷ predict.py |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for system, concurrency, speed, p50, p95, failed in rows:
        p50_text = "-" if p50 is None else f"{p50:,.0f}"
        p95_text = "-" if p95 is None else f"{p95:,.0f}"
        print(
            f"| {system} | {concurrency} | {speed:,.0f} | {p50_text} | {p95_text} | {failed} | {speed / baseline:.2f} |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
