"""``python -m src.serve --ner runs/ner --stance runs/stance``: the prediction service on uvicorn.

Everything that can be wrong is found before the port is bound (flags, the API key file, the model folders: the
checks ``scripts/predict.py`` runs), each as one ``error:`` line and exit 2; so a replica that listens can serve.
SIGTERM (or Ctrl-C) stops accepting, answers the requests in flight, stops the inference thread and exits 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from src.predict.io import add_model_arguments

try:
    import uvicorn

    from src.serve.app import Limits, create_app, describe_models
except ImportError as missing:  # FastAPI or uvicorn: the serve extra is not installed
    print(f"error: {missing.name} is not installed: pip install -e '.[serve]' (make installs it)", file=sys.stderr)
    sys.exit(2)

DEFAULTS = Limits()


class Parser(argparse.ArgumentParser):
    """Usage errors as one ``error:`` line (exit 2), like every other refusal of this command."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see python -m src.serve --help)", file=sys.stderr)
        sys.exit(2)


def number(kind: type, minimum: float, maximum: float | None = None):
    """An argparse type: an int or float from ``minimum`` (to ``maximum``)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a {'whole ' if kind is int else ''}number, got {text!r}"
            ) from None
        if not value >= minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m src.serve",
        description="Serve entity and sentence-stance prediction over HTTP (POST /v1/annotate; docs at /docs).",
        epilog="Scale out with stateless replicas behind any load balancer (one process per replica; each loads "
        "the models once). Health checks: GET /healthz (alive), GET /readyz (ready to serve).",
    )
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=number(int, 0, 65535), default=8000)
    parser.add_argument(
        "--api-key-file",
        type=Path,
        help="file of API keys, one a line: every route but /healthz and /readyz then needs one, sent as "
        "Authorization: Bearer KEY or X-API-Key: KEY",
    )
    limits = parser.add_argument_group("limits (beyond them: 413, 422, 503 with Retry-After, 504)")
    for flag, kind, minimum, text in (
        ("--max-body-bytes", int, 1, "request body size"),
        ("--max-documents", int, 1, "documents per request"),
        ("--max-chars", int, 1, "characters of text per request"),
        ("--max-in-flight", int, 1, "requests being read, queued or predicted at once"),
        ("--queue-size", int, 1, "requests waiting for the inference thread"),
        ("--batch-size", int, 1, "documents per Predictor call (a larger request runs alone)"),
        ("--batch-wait-ms", float, 0, "how long a batch waits for more requests after its first"),
        ("--timeout-s", float, 0.001, "seconds per request, from its first byte to its answer"),
    ):
        default = getattr(DEFAULTS, flag[2:].replace("-", "_"))
        limits.add_argument(flag, type=number(kind, minimum), default=default, help=f"{text} (default {default:_})")
    model = parser.add_argument_group("prediction (as scripts/predict.py)")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    model.add_argument(
        "--quantize",
        choices=("auto", "none", "int8"),
        default="auto",
        help="auto (default): each model folder's choice on CPU (cpu_quantize); none: fp32; int8: faster on CPU",
    )
    model.add_argument("--threads", type=number(int, 1), help="CPU threads for inference (default: one per core)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def read_api_keys(parser: Parser, path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        parser.error(f"--api-key-file {path}: cannot read it: {getattr(err, 'strerror', None) or err}")
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        parser.error(f"--api-key-file {path}: holds no key (one a line)")
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """The bound socket (uvicorn serves it), so a port in use is one ``error:`` line like any other refusal."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ner is None and args.stance is None and not args.model:
        parser.error("give --ner, --stance, --model (a folder of any task) or several")
    keys = read_api_keys(parser, args.api_key_file)
    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    if not logging.getLogger("src").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("serve: %(levelname)s: %(message)s"))
        logging.getLogger("src").addHandler(handler)
        logging.getLogger("src").setLevel(args.log_level.upper())
    if not keys and not is_loopback(args.host):
        warning = f"listening on {args.host} without --api-key-file: anyone who reaches it can use it"
        print(f"serve: warning: {warning}", file=sys.stderr)

    from src.model_folder import folders_by_task
    from src.predict.engine import OptionError, Predictor  # after the argument checks: importing torch takes seconds

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        folders = folders_by_task(args.ner, args.stance, args.model)
        predictor = Predictor.from_pretrained(**folders, device=args.device, quantize=args.quantize)
        models = describe_models(predictor, folders)
    except OptionError as err:
        parser.error(f"--{err.option.replace('_', '-')} {err.detail}")
    except (OSError, ValueError, ImportError) as err:
        parser.error(f"cannot load the checkpoints: {err}")
    try:
        sock = listen(args.host, args.port)
    except OSError as err:
        parser.error(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}")

    app = create_app(lambda: predictor, limits, models, keys)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="on",
        server_header=False,
        # a stuck client cannot hold the stop forever: every request ends within --timeout-s anyway
        timeout_graceful_shutdown=int(limits.timeout_s) + 5,
    )
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again under the handler it found: with
    # these it returns, and a requested stop exits 0 instead of dying of the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serve: listening on http://{host}:{sock.getsockname()[1]} (docs: /docs)", file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
