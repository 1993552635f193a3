"""``python -m src.evaluate model=DIR data.path=FILE [out_dir=DIR]``, ``python -m src.evaluate model=DIR
behaviour=SUITE`` or ``python -m src.evaluate cv=MULTIRUN_DIR [store=[RUN,...]] [behaviour=SUITE]
[results=docs/results.md]``.

Overrides are ``key=value`` pairs (OmegaConf dot-list, as in Hydra) on configs/evaluate.yaml; an unknown key is an
error. Not a Hydra app: ``model`` is also the training config's group name, and evaluating makes no outputs/ folder.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import date
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.files import write_json
from src.markdown import write_between_markers
from src.model import resolve_model_dir

from .behaviour import behaviour_table, run_suite
from .calibration import store
from .checkpoint import evaluate_checkpoint
from .cv import results_block, write_cv
from .report import per_label_table

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def load_config(overrides: list[str]) -> DictConfig:
    """configs/evaluate.yaml with ``key=value`` overrides; raises ``ValueError`` on an unknown key or bad pair."""
    cfg = OmegaConf.load(CONFIG_DIR / "evaluate.yaml")
    OmegaConf.set_struct(cfg, True)
    bad = [a for a in overrides if "=" not in a]
    if bad:
        raise ValueError(f"expected key=value arguments, got {bad}")
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as err:
        raise ValueError(f"bad override ({err.__class__.__name__}): {err}") from err


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (2: bad arguments, 1: bad input such as a missing fold)."""
    try:
        return run(argv)
    except (ValueError, FileNotFoundError) as err:  # CVError, DataError and bad predictions are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 1


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\nconfigs/evaluate.yaml:\n" + (CONFIG_DIR / "evaluate.yaml").read_text())
        return 0
    try:
        cfg = load_config(argv)
    except ValueError as err:
        print(f"error: {err}; see --help", file=sys.stderr)
        return 2
    if (cfg.model is None) == (cfg.cv is None):
        print(
            "error: give exactly one of model=DIR (with data.path=FILE) or cv=MULTIRUN_DIR; see --help", file=sys.stderr
        )
        return 2
    behaviour = None if cfg.behaviour is None else str(cfg.behaviour)
    if behaviour is not None and not Path(behaviour).is_file():
        print(f"error: behaviour={behaviour}: no such file", file=sys.stderr)
        return 2
    if cfg.cv is not None:
        return run_cv(cfg, behaviour, argv)
    if behaviour is not None and cfg.data.path is None:
        return suite(str(cfg.model), behaviour, cfg)
    if cfg.data.path is None:
        print("error: model=DIR needs data.path=FILE (annotated records) or behaviour=FILE", file=sys.stderr)
        return 2
    problem = path_problem(Path(str(cfg.data.path)), cfg.out_dir and Path(str(cfg.out_dir)))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    metrics, paths = evaluate_checkpoint(
        str(cfg.model),
        str(cfg.data.path),
        cfg.out_dir and str(cfg.out_dir),
        device=cfg.device,
        batch_size=cfg.batch_size,
    )
    print(per_label_table(metrics))
    print(json.dumps({"headline": metrics["headline"], **{k: str(v) for k, v in paths.items()}}, indent=2))
    return 0


def run_cv(cfg: DictConfig, behaviour: str | None, argv: list[str]) -> int:
    """``cv=``: pool a multirun's folds, print each system's figures, write them into ``results`` (with the command
    line ``argv``) and store calibration where asked."""
    data_path = None if cfg.data.path is None else str(cfg.data.path)
    engine = None
    if cfg.backend is not None:
        engine = {"backend": str(cfg.backend), "quantize": str(cfg.quantize), "precision": str(cfg.precision)}
    if engine is not None and (cfg.out_dir is None or bool(cfg.store)):
        print(
            "error: backend= re-predicts the folds for a comparison: give out_dir= (the runs' own report stays) "
            "and no store=",
            file=sys.stderr,
        )
        return 2
    cv_metrics = write_cv(
        str(cfg.cv),
        cfg.out_dir and str(cfg.out_dir),
        data_path,
        cfg.baselines,
        cfg.calibration or bool(cfg.store),
        behaviour=behaviour,
        engine=engine,
    )
    for task, result in cv_metrics["tasks"].items():
        for name, system in result["systems"].items():
            print(
                f"{task:7s} {name:22s} pooled {system['pooled']['headline']['name']} "
                f"{system['pooled']['headline']['value']:.3f}  folds {system['mean']:.3f} ± {system['std']:.3f}"
            )
    print(f"wrote {Path(cfg.out_dir or cfg.cv) / 'cv_report.md'}")
    if cfg.results:
        command = " ".join(["python -m src.evaluate", *(shlex.quote(a) for a in argv)])
        write_between_markers(Path(str(cfg.results)), *results_block(cv_metrics, command, date.today().isoformat()))
        print(f"wrote {cfg.results} (the block of {Path(str(cfg.cv)).name})")
    size = read_size_check(cfg.size_check, str(cfg.cv)) if cfg.size_check else None
    for line in store(cv_metrics, str(cfg.cv), list(cfg.store or []), cfg.decision_bias, size):
        print(line)
    return 0


def read_size_check(path: str, cv: str) -> dict:
    """``nested_calibration.json`` made on the outer models of ``cv`` (``ValueError`` otherwise)."""
    try:
        check = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"size_check={path}: cannot read it ({err})") from None
    if not isinstance(check, dict) or "temperature_smaller_models" not in check:
        raise ValueError(f"size_check={path}: not a nested_calibration.json (src.evaluate.nested_cv --calibration)")
    if Path(str(check.get("outer"))).resolve() != Path(cv).resolve():
        raise ValueError(
            f"size_check={path}: made on the fold models of {check.get('outer')}, not of cv={cv}; run "
            f"python -m src.evaluate.nested_cv --task stance --calibration --outer {cv} (make calibrate does)"
        )
    return check


def suite(model: str, behaviour: str, cfg: DictConfig) -> int:
    """The behavioural suite on one stance model: the table, and behaviour.json in ``out_dir`` (default: beside the
    model folder)."""
    result = run_suite(model, behaviour, device=cfg.device, batch_size=cfg.batch_size)
    print(behaviour_table({model: result}))
    for failure in result["failures"][:20]:
        cases = "; ".join(f"{c['id']} expected {c['expect']}, got {c['got']}" for c in failure["cases"])
        print(f"failed {failure['type']} {failure['test']}: {cases}")
    folder = Path(resolve_model_dir(model))
    out = Path(str(cfg.out_dir)) if cfg.out_dir else folder.parent / "behaviour"
    print(f"wrote {write_json(out / 'behaviour.json', result)}")
    return 0


def path_problem(data_path: Path, out_dir: Path | None) -> str | None:
    """What is wrong with the gold file or the output folder, found before any prediction work."""
    if not data_path.is_file():
        what = "is a folder, not an annotated file" if data_path.is_dir() else "no such file"
        return f"data.path={data_path}: {what}"
    if out_dir is None:
        return None
    if out_dir.exists() and not out_dir.is_dir():
        return f"out_dir={out_dir}: is a file, not a folder"
    existing = next((p for p in (out_dir, *out_dir.parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"out_dir={out_dir}: {existing} is not writable"
    return None


if __name__ == "__main__":
    sys.exit(main())
