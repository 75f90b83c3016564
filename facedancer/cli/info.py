"""`facedancer info MODEL`: what a model file holds and how it was read."""

from __future__ import annotations

import argparse
import json

from facedancer.errors import FaceDancerError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="describe a model file (kind, shapes, parameters, decoder config, format)",
        description="Load a model file the way every facedancer command does and describe it.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("model", nargs="?", help="model file: .keras, original .h5, or gen.json (+ --weights)")
    src.add_argument("--preset", help="describe a freshly built generator preset instead (e.g. C)")
    p.add_argument("--weights", help="weights .h5 for a gen.json/dis.json architecture (default: newest gen_N.h5)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=run)


def describe(loaded) -> dict:
    """A JSON-able description of a LoadedModel."""
    from facedancer.nn.describe import generator_config_of

    model = loaded.model
    desc = {
        "path": str(loaded.path),
        "format": loaded.format,
        "kind": loaded.kind,
        "name": model.name,
        "inputs": [[None if d is None else int(d) for d in t.shape] for t in model.inputs],
        "outputs": [[None if d is None else int(d) for d in t.shape] for t in model.outputs],
        "parameters": int(model.count_params()),
        "layers": len(model.layers),
    }
    if loaded.weights is not None:
        desc["weights"] = str(loaded.weights)
    if loaded.kind == "generator":
        config = generator_config_of(model)
        desc["decoder"] = config.to_dict() if config else "not a FaceDancer decoder layout"
    return desc


def run(args: argparse.Namespace) -> int:
    from facedancer.models import LoadedModel, load, model_kind

    if args.preset:
        from pathlib import Path

        from facedancer.nn.generator import build_generator, preset

        try:
            model = build_generator(preset(args.preset))
        except ValueError as exc:
            raise FaceDancerError(str(exc)) from exc
        loaded = LoadedModel(model, model_kind(model), f"built from preset {args.preset}", Path("-"))
    else:
        loaded = load(args.model, weights=args.weights)
    desc = describe(loaded)
    if args.json:
        print(json.dumps(desc, indent=2))
        return 0
    width = max(len(k) for k in desc)
    for key, value in desc.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in value.items())
        print(f"{key:<{width}}  {value}")
    return 0
