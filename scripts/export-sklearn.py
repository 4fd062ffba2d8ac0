#!/usr/bin/env python3
"""Export a fitted scikit-learn pipeline for a Cordon package.

A scikit-learn Pipeline of a ColumnTransformer and an estimator becomes two files:
  encoders/<name>.toml   the ColumnTransformer as a Cordon encoder: every column in feature
                         order with its fitted means and scales, levels, fill values and
                         unknown-level rules. The guest SDK's `encoders::get` reads it; the
                         host checks it and takes its levels as the columns' domains.
  graphs/<graph>.onnx    the estimator alone, as ONNX with one float32 input `features`
                         [N, width] (no ZipMap, no string outputs): what wasi:nn can carry.
A whole pipeline exported by skl2onnx would take string tensors, which wasi:nn has not; this
split keeps the text in the guest and the graph numeric.

With --sample, it also writes the pipeline's own predictions on that CSV (`predict_proba`'s
last column for a binary classifier, `predict` for a regressor) as --reference, under the
name --output: what `cordon test --reference` compares the package with. And it checks, on
the sample, that the encoder reproduces the ColumnTransformer exactly.

Usage (with scripts/export-sklearn-requirements.txt installed):
  python export-sklearn.py model.joblib --out . [--encoder features] [--graph model]
      [--sample sample.csv --reference reference.csv --output score]

Supported inside the ColumnTransformer (alone or in a Pipeline, an imputer first):
  SimpleImputer (missing values: NaN or None, any strategy), StandardScaler,
  OneHotEncoder (handle_unknown "error" or "ignore", drop), OrdinalEncoder (handle_unknown
  "error" or "use_encoded_value"), "passthrough" and "drop". Anything else is refused by name.
"""

import argparse
import math
import pathlib
import sys

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler


class Refused(Exception):
    """The pipeline holds something the exporter cannot express exactly."""


def toml_string(text):
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in str(text):
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_float(value):
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        raise Refused("an infinite number cannot be encoded")
    return repr(value)


def is_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


SUPPORTED = (SimpleImputer, StandardScaler, OneHotEncoder, OrdinalEncoder)


def refuse_subclasses(step, where):
    """A subclass may override transform: only the classes themselves are exported."""
    if isinstance(step, SUPPORTED) and type(step) not in SUPPORTED:
        raise Refused(f"{where}: {type(step).__name__} subclasses a scikit-learn class; export the class itself")


def steps_of(transformer):
    if isinstance(transformer, Pipeline):
        return [step for _, step in transformer.steps]
    return [transformer]


def text_levels(categories, where):
    levels = []
    for level in categories:
        if is_missing(level):
            raise Refused(
                f"{where}: a missing value was a category in training; put a SimpleImputer "
                "before the encoder"
            )
        if not isinstance(level, str):
            raise Refused(
                f"{where}: category {level!r} is not text; Cordon's one-hot and ordinal "
                "encodings take text columns (encode numbers with a scaler or passthrough)"
            )
        levels.append(level)
    return levels


def encode_columns(name, transformer, columns):
    """The encoder's [[column]] entries for one transformer of the ColumnTransformer."""
    if isinstance(transformer, str):
        if transformer == "drop":
            return []
        if transformer == "passthrough":
            for column in columns:
                if not isinstance(column, str):
                    raise Refused(f"transformer `{name}`: select columns by name, not {column!r}")
            return [{"name": c, "encode": "number"} for c in columns]
        raise Refused(f"transformer `{name}`: `{transformer}` is not supported")
    steps = steps_of(transformer)
    for step in steps:
        refuse_subclasses(step, f"transformer `{name}`")
    imputer = None
    if steps and isinstance(steps[0], SimpleImputer):
        imputer = steps.pop(0)
        if imputer.add_indicator:
            raise Refused(f"transformer `{name}`: SimpleImputer(add_indicator=True) is not supported")
        if not is_missing(imputer.missing_values):
            raise Refused(
                f"transformer `{name}`: SimpleImputer(missing_values={imputer.missing_values!r}); "
                "Cordon fills nulls (and NaN), so only missing_values=np.nan or None is exact"
            )
    if len(steps) > 1:
        raise Refused(
            f"transformer `{name}`: {' -> '.join(type(s).__name__ for s in steps)}; one encoder "
            "(after an optional SimpleImputer) per transformer is supported"
        )
    encoder = steps[0] if steps else "passthrough"
    entries = []
    for index, column in enumerate(columns):
        if not isinstance(column, str):
            raise Refused(f"transformer `{name}`: select columns by name, not {column!r}")
        where = f"transformer `{name}`, column `{column}`"
        entry = {"name": column}
        if imputer is not None:
            fill = imputer.statistics_[index]
            if is_missing(fill):
                raise Refused(f"{where}: the imputer learnt no fill value (the column was all missing)")
            entry["fill"] = fill
        if encoder == "passthrough" or isinstance(encoder, StandardScaler):
            entry["encode"] = "number"
            if isinstance(encoder, StandardScaler):
                # with_mean=False still fits mean_, but transform does not subtract it.
                if encoder.with_mean:
                    entry["center"] = float(encoder.mean_[index])
                if encoder.with_std:
                    entry["scale"] = float(encoder.scale_[index])
            if "fill" in entry and isinstance(entry["fill"], str):
                raise Refused(f"{where}: a text fill before a number encoding")
        elif isinstance(encoder, OneHotEncoder):
            entry["encode"] = "one-hot"
            entry["levels"] = text_levels(encoder.categories_[index], where)
            infrequent = getattr(encoder, "infrequent_categories_", None)
            if infrequent is not None and infrequent[index] is not None:
                raise Refused(f"{where}: infrequent categories (min_frequency, max_categories) are not supported")
            if encoder.handle_unknown in ("ignore", "infrequent_if_exist"):
                entry["unknown"] = "ignore"
            elif encoder.handle_unknown != "error":
                raise Refused(f"{where}: handle_unknown={encoder.handle_unknown!r}")
            drop = encoder.drop_idx_[index] if encoder.drop_idx_ is not None else None
            if drop is not None:
                entry["drop"] = entry["levels"][int(drop)]
        elif isinstance(encoder, OrdinalEncoder):
            entry["encode"] = "ordinal"
            entry["levels"] = text_levels(encoder.categories_[index], where)
            infrequent = getattr(encoder, "infrequent_categories_", None)
            if infrequent is not None and infrequent[index] is not None:
                raise Refused(f"{where}: infrequent categories (min_frequency, max_categories) are not supported")
            if encoder.handle_unknown == "use_encoded_value":
                entry["unknown"] = "value"
                entry["unknown-value"] = float(encoder.unknown_value)
            elif encoder.handle_unknown != "error":
                raise Refused(f"{where}: handle_unknown={encoder.handle_unknown!r}")
        else:
            raise Refused(
                f"{where}: {type(encoder).__name__} is not supported (StandardScaler, "
                "OneHotEncoder, OrdinalEncoder, passthrough)"
            )
        if entry["encode"] != "number" and "fill" in entry:
            entry["fill"] = str(entry["fill"])
        entries.append(entry)
    return entries


def encoder_entries(transformer):
    if not isinstance(transformer, ColumnTransformer):
        raise Refused(f"the pipeline's first step is {type(transformer).__name__}, not a ColumnTransformer")
    if transformer.transformer_weights:
        raise Refused("ColumnTransformer(transformer_weights=...) is not supported")
    entries = []
    for name, step, columns in transformer.transformers_:
        entries.extend(encode_columns(name, step, list(columns)))
    return entries


def width_of(entries):
    width = 0
    for entry in entries:
        if entry["encode"] == "one-hot":
            width += len(entry["levels"]) - (1 if "drop" in entry else 0)
        else:
            width += 1
    return width


def write_encoder(entries, path, source):
    lines = [
        f"# Written by scripts/export-sklearn.py from {source}; do not edit by hand: re-export",
        "# after retraining. Every column in feature order, as the ColumnTransformer fitted it.",
        "encoder-version = 1",
    ]
    for entry in entries:
        lines.append("")
        lines.append("[[column]]")
        lines.append(f"name = {toml_string(entry['name'])}")
        lines.append(f"encode = {toml_string(entry['encode'])}")
        for key in ("center", "scale"):
            if key in entry:
                lines.append(f"{key} = {toml_float(entry[key])}")
        if "levels" in entry:
            lines.append("levels = [" + ", ".join(toml_string(l) for l in entry["levels"]) + "]")
        if "drop" in entry:
            lines.append(f"drop = {toml_string(entry['drop'])}")
        if "unknown" in entry:
            lines.append(f"unknown = {toml_string(entry['unknown'])}")
        if "unknown-value" in entry:
            lines.append(f"unknown-value = {toml_float(entry['unknown-value'])}")
        if "fill" in entry:
            fill = entry["fill"]
            lines.append(
                f"fill = {toml_string(fill)}" if isinstance(fill, str) else f"fill = {toml_float(fill)}"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def encode_like_cordon(entries, frame):
    """The features the guest SDK computes, in float64 before its one rounding to float32."""
    rows = len(frame)
    columns = []
    for entry in entries:
        values = frame[entry["name"]].tolist()
        if entry["encode"] == "number":
            out = np.empty(rows)
            for i, v in enumerate(values):
                v = entry.get("fill") if is_missing(v) else float(v)
                if v is None:
                    raise Refused(f"sample row {i}: column `{entry['name']}` is missing and has no fill")
                out[i] = (float(v) - entry.get("center", 0.0)) / entry.get("scale", 1.0)
            columns.append(out[:, None])
            continue
        levels = entry["levels"]
        index = {level: n for n, level in enumerate(levels)}
        kept = [n for n, level in enumerate(levels) if level != entry.get("drop")]
        block = np.zeros((rows, len(kept) if entry["encode"] == "one-hot" else 1))
        for i, v in enumerate(values):
            if is_missing(v):
                v = entry.get("fill")
            level = index.get(v) if v is not None else None
            if level is None:
                if entry.get("unknown", "error") == "error":
                    raise Refused(f"sample row {i}: column `{entry['name']}` has unknown level {v!r}")
                if entry["encode"] == "ordinal":
                    block[i, 0] = entry["unknown-value"]
                continue
            if entry["encode"] == "ordinal":
                block[i, 0] = level
            elif level in kept:
                block[i, kept.index(level)] = 1.0
        columns.append(block)
    return np.hstack(columns)


def export_graph(estimator, width, path):
    from onnx import TensorProto
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    model = convert_sklearn(
        estimator,
        initial_types=[("features", FloatTensorType([None, width]))],
        options=options,
    )
    # wasi:nn has no string tensors: a classifier trained on text labels gets its `label`
    # output removed (its probabilities stay, in the order of `classes_`).
    for output in list(model.graph.output):
        if output.type.tensor_type.elem_type == TensorProto.STRING:
            model.graph.output.remove(output)
            print(f"note: output `{output.name}` is text; removed (wasi:nn cannot carry it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return [o.name for o in model.graph.output]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=pathlib.Path, help="a joblib file of a fitted Pipeline")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="the package directory")
    parser.add_argument("--encoder", default="features", help="the encoder's name (default: features)")
    parser.add_argument("--graph", default="model", help="the graph's name (default: model)")
    parser.add_argument("--sample", type=pathlib.Path, help="a CSV of input rows to predict")
    parser.add_argument("--reference", type=pathlib.Path, help="where to write the predictions")
    parser.add_argument("--output", default="score", help="the prediction's column name (default: score)")
    args = parser.parse_args()

    pipeline = joblib.load(args.pipeline)
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise Refused("expected a fitted Pipeline of two steps: a ColumnTransformer and an estimator")
    transformer, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    entries = encoder_entries(transformer)
    width = width_of(entries)

    encoder_path = args.out / "encoders" / f"{args.encoder}.toml"
    graph_path = args.out / "graphs" / f"{args.graph}.onnx"
    frame = None
    if args.sample is not None:
        # Checked before anything is written: a refused export leaves the old files as they were.
        frame = pd.read_csv(args.sample, keep_default_na=True)
        mine = encode_like_cordon(entries, frame)
        theirs = transformer.transform(frame)
        if hasattr(theirs, "toarray"):
            theirs = theirs.toarray()
        theirs = np.asarray(theirs, dtype=np.float64)
        if mine.shape != theirs.shape or not np.array_equal(mine, theirs, equal_nan=True):
            difference = np.nanmax(np.abs(mine - theirs)) if mine.shape == theirs.shape else "shape"
            raise Refused(f"the encoder does not reproduce the ColumnTransformer on the sample ({difference})")
        print(f"checked: the encoder reproduces the ColumnTransformer on {len(frame)} sample rows exactly")

    # Each file appears whole or not at all: written beside its place, then renamed.
    staged_encoder = encoder_path.with_name(encoder_path.name + ".partial")
    staged_graph = graph_path.with_name(graph_path.name + ".partial")
    write_encoder(entries, staged_encoder, args.pipeline.name)
    outputs = export_graph(estimator, width, staged_graph)
    staged_encoder.replace(encoder_path)
    staged_graph.replace(graph_path)
    print(f"wrote {encoder_path} ({len(entries)} columns, {width} features per row)")
    print(f"wrote {graph_path} (input `features` float32 [N, {width}]; outputs {', '.join(outputs)})")

    if frame is not None:
        if args.reference is not None:
            if hasattr(estimator, "predict_proba"):
                probabilities = pipeline.predict_proba(frame)
                if probabilities.shape[1] != 2:
                    raise Refused("--reference writes one column: a binary classifier or a regressor")
                predictions = probabilities[:, 1]
            else:
                predictions = pipeline.predict(frame)
            pd.DataFrame({args.output: predictions}).to_csv(args.reference, index=False, float_format="%.17g")
            print(f"wrote {args.reference} ({len(predictions)} rows of `{args.output}`)")

    print()
    print("In cordon.toml:")
    print("[[encoder]]")
    print(f"name = {toml_string(args.encoder)}")
    print(f"file = {toml_string(f'encoders/{args.encoder}.toml')}")
    print()
    print("[[graph]]")
    print(f"name = {toml_string(args.graph)}")
    print(f"file = {toml_string(f'graphs/{args.graph}.onnx')}")
    print('format = "onnx"')
    print()
    print("The input columns it reads (set each type to your table's; levels come from the encoder):")
    for entry in entries:
        kind = "text" if entry["encode"] != "number" else "float64"
        print(f"  {{ name = {toml_string(entry['name'])}, type = \"{kind}\" }},")


if __name__ == "__main__":
    try:
        main()
    except Refused as refused:
        print(f"export-sklearn: {refused}", file=sys.stderr)
        sys.exit(1)
