"""``omnihub run NAME --input FILE.npy``: fetch, load, predict, print or save the result.

The model is fetched like every other command (cache, verification, offline mode) and loaded
by its loader; DL4J and SameDiff networks then predict through their own ``output()`` (which
converts them to ONNX and runs onnxruntime), an ONNX model runs as it is. ``--onnx`` exports
the ONNX model that ran. numpy, onnx and onnxruntime are imported only here, when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnihub._enums import Format
from omnihub.catalog import ModelEntry
from omnihub.cli._arrays import InputError, read_array, write_results
from omnihub.cli._config import current
from omnihub.cli._main import ExitCode
from omnihub.cli._names import resolve_one
from omnihub.search import qualified_name

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["RUNNABLE_FORMATS", "cmd_run", "converts", "predict", "runnable"]

#: The formats ``omnihub run`` can execute (DL4J and SameDiff through their ONNX conversion).
RUNNABLE_FORMATS = (Format.DL4J, Format.SAMEDIFF, Format.ONNX)

_Results = list[tuple[str, "npt.NDArray[Any]"]]


def runnable(entry: ModelEntry) -> tuple[bool, str]:
    """Whether ``omnihub run`` can execute ``entry``, and how (cheap: no import, no file read)."""
    if entry.format not in RUNNABLE_FORMATS:
        kinds = ", ".join(f.value for f in RUNNABLE_FORMATS)
        return False, f"no: format {entry.format.value} (runnable formats: {kinds})"
    missing = [name for name in ("numpy", "onnx") if find_spec(name) is None]
    if missing:
        return False, f"no: {' and '.join(missing)} not installed (pip install 'omnihub[run]')"
    how = "as ONNX" if entry.format is Format.ONNX else f"{entry.format.value} -> ONNX"
    if find_spec("onnxruntime") is None:
        return True, f"yes ({how}, onnx.reference: slow; pip install onnxruntime)"
    return True, f"yes ({how}, onnxruntime)"


def converts(entry: ModelEntry) -> tuple[bool | None, str]:
    """Whether the cached file loads and converts to ONNX (None: not checked), and a summary.

    Never downloads: a model that is not cached is not checked. An unsupported layer or op is
    reported with the converter's message, which lists every one in the model.
    """
    from omnihub.cache import is_fresh
    from omnihub.errors import OmnihubError
    from omnihub.hub import target_path
    from omnihub.loaders import load

    ok, how = runnable(entry)
    if not ok:
        return None, f"not checked: {how.removeprefix('no: ')}"
    try:
        path = target_path(entry, current())
    except OmnihubError as exc:
        return None, f"not checked: {exc}"
    if not is_fresh(path, entry.sha256, entry.size):
        return None, "not checked: not cached (`omnihub download` it first)"
    try:
        model: Any = load(entry, path)
        proto = model if entry.format is Format.ONNX else model.to_onnx()
    except OmnihubError as exc:
        return False, f"no: {' '.join(str(exc).split())}"
    nodes, weights = len(proto.graph.node), len(proto.graph.initializer)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return True, f"yes: {nodes} ONNX nodes, {weights} initializers, opset {opset}"


def _fetch(entry: ModelEntry) -> Path:
    """The verified cached file, downloaded first if needed (with bars on a terminal)."""
    from omnihub.cli._download import download_entries, show_progress

    progress = show_progress(None, disabled_by_config=current().disable_progress)
    done, failed = download_entries([entry], force=False, jobs=1, progress=progress, quiet=True)
    if failed:
        raise failed[0][1]
    return done[0][1]


def _by_name(specs: Sequence[tuple[str | None, Any]], names: Sequence[str], what: str) -> list[Any]:
    """Order the inputs by ``names``: all positional (in order) or all named (each once)."""
    named = [name for name, _ in specs if name is not None]
    listed = ", ".join(names) or "none"
    if not named:
        if len(specs) != len(names):
            raise InputError(
                f"the {what} takes {len(names)} input(s) ({listed}), got {len(specs)} --input"
            )
        return [value for _, value in specs]
    if len(named) != len(specs):
        raise InputError(f"give every --input as NAME=FILE.npy or none; the {what} takes {listed}")
    values = dict(specs)
    unknown = sorted(set(named) - set(names))
    if unknown or len(values) != len(specs):
        problem = f"unknown input {', '.join(unknown)}" if unknown else "an input given twice"
        raise InputError(f"{problem}; the {what} takes {listed}")
    absent = [name for name in names if name not in values]
    if absent:
        raise InputError(f"missing input {', '.join(absent)}; the {what} takes {listed}")
    return [values[name] for name in names]


def _check_known(wanted: Sequence[str], known: Sequence[str]) -> None:
    unknown = [name for name in wanted if name not in known]
    if unknown:
        listed = ", ".join(known)
        raise InputError(f"unknown output {', '.join(unknown)}; the model computes {listed}")


def _select(results: _Results, wanted: Sequence[str]) -> _Results:
    if not wanted:
        return results
    found = dict(results)
    _check_known(wanted, list(found))
    return [(name, found[name]) for name in wanted]


def _run_onnx(
    model: Any, inputs: Sequence[tuple[str | None, Any]], outputs: Sequence[str]
) -> _Results:
    """Run a plain ONNX model with the runner DL4J/SameDiff models use, inputs by graph name."""
    from omnihub.convert._run import Session

    session = Session(model, f"ONNX graph {model.graph.name!r}")
    names = [spec.name for spec in session.inputs]
    values = _by_name(inputs, names, "ONNX model")
    wanted = list(outputs) or None
    if wanted is not None:
        _check_known(wanted, session.outputs)
    return list(session.run(dict(zip(names, values, strict=True)), wanted).items())


def predict(
    model: object, inputs: Sequence[tuple[str | None, Any]], outputs: Sequence[str] = ()
) -> _Results:
    """Run a loaded model on ``(name or None, array)`` inputs; ``(name, array)`` per output.

    A ``MultiLayerNetwork`` takes one input (``output(x)``), a ``ComputationGraph`` its inputs
    in order or by DL4J input name (``output(*inputs)``), a ``SameDiffGraph`` placeholders by
    name (``output(placeholders, outputs)``; one unnamed input feeds its only placeholder),
    an ONNX model its graph inputs. A ``ValueError`` from the model (shape, dtype) becomes an
    :class:`InputError`.
    """
    from omnihub.loaders.dl4j import ComputationGraph, MultiLayerNetwork
    from omnihub.loaders.samediff import SameDiffGraph

    pairs = [(name, value) for name, value in inputs]
    try:
        if isinstance(model, MultiLayerNetwork):
            if len(pairs) != 1:
                raise InputError(f"a MultiLayerNetwork takes one input, got {len(pairs)} --input")
            return _select([("output", model.output(pairs[0][1]))], outputs)
        if isinstance(model, ComputationGraph):
            values = _by_name(pairs, model.inputs, "ComputationGraph")
            results = model.output(*values)
            return _select(list(zip(model.outputs, results, strict=True)), outputs)
        if isinstance(model, SameDiffGraph):
            if len(pairs) == 1 and pairs[0][0] is None and len(model.placeholders) == 1:
                pairs = [(model.placeholders[0], pairs[0][1])]
            if any(name is None for name, _ in pairs):
                listed = ", ".join(model.placeholders)
                raise InputError(f"give --input NAME=FILE.npy per placeholder ({listed})")
            feeds: Mapping[str, Any] = {str(name): value for name, value in pairs}
            computed = model.output(feeds, list(outputs) or None)
            return list(computed.items())
        if type(model).__name__ == "ModelProto":
            return _run_onnx(model, pairs, outputs)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(" ".join(str(exc).split())) from None
    raise InputError(f"cannot run a {type(model).__module__}.{type(model).__qualname__}")


def _export(model: object, path: Path) -> str:
    """Write the ONNX form of ``model`` to ``path``; describe it."""
    to_onnx = getattr(model, "to_onnx", None)
    proto: Any = to_onnx() if to_onnx is not None else model
    if type(proto).__name__ != "ModelProto":
        what = f"{type(model).__module__}.{type(model).__qualname__}"
        raise InputError(f"cannot export a {what} as ONNX")
    data: bytes = proto.SerializeToString()
    path.write_bytes(data)
    return f"wrote the ONNX model ({len(data)} bytes) to {path}"


def _show(results: _Results) -> None:
    import numpy as np

    for name, value in results:
        sys.stdout.write(f"{name}: shape {tuple(value.shape)} {value.dtype}\n")
        sys.stdout.write(np.array2string(value, threshold=200) + "\n")


def cmd_run(args: argparse.Namespace) -> int:
    """Fetch and load NAME, run it on the ``--input`` arrays, print or save the outputs.

    Warnings (the onnx.reference fallback notice) are printed as one line each on stderr.
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _run(args)
        finally:
            for warning in caught:
                text = " ".join(str(warning.message).split())
                sys.stderr.write(f"omnihub: warning: {text}\n")


def _run(args: argparse.Namespace) -> int:
    from omnihub.loaders import load

    entry = resolve_one(args.name)
    ok, how = runnable(entry)
    if not ok:
        raise InputError(f"{qualified_name(entry)} cannot run: {how.removeprefix('no: ')}")
    if not args.inputs and args.onnx is None:
        raise InputError("nothing to do: give --input FILE.npy (and/or --onnx OUT.onnx)")
    inputs = [(spec.name, read_array(spec.path)) for spec in args.inputs]
    model = load(entry, _fetch(entry))
    if args.onnx is not None:
        sys.stderr.write(_export(model, args.onnx) + "\n")
    if not inputs:
        return ExitCode.OK
    try:
        results = predict(model, inputs, args.outputs)
    except InputError as exc:
        raise InputError(f"{qualified_name(entry)}: {exc}") from None
    if args.output is not None:
        sys.stderr.write(write_results(args.output, results) + "\n")
    elif args.json:
        _show_json(entry, results)
    else:
        _show(results)
    return ExitCode.OK


def _show_json(entry: ModelEntry, results: _Results) -> None:
    from omnihub.cli._output import print_json

    outputs = {
        name: {"shape": list(value.shape), "dtype": str(value.dtype), "values": value.tolist()}
        for name, value in results
    }
    print_json({"model": qualified_name(entry), "outputs": outputs})
