"""Train the forecaster's autoregression and export it as ONNX.

A provider runs this once; consumers never need it. The model is one linear autoregression
shared by every region: the next quarter from the last 8, each window divided by its own mean
so that one set of weights serves regions of any size (the graph does the scaling, so the guest
feeds it raw values). It is fitted by least squares on every region's quarters up to 2014Q4
only: the last 8 quarters (2015Q1-2016Q4) are the example's backtest and are never seen here.

It writes, next to the example:
  graphs/forecast_ar.onnx   input `lags` float32 [N, 8] (oldest first), output `next` float32 [N, 1]
  training/metrics.json     the weights, the in-sample error and the set-up

Usage: python training/train.py   (from examples/forecast, with training/requirements.txt installed)
"""

import csv
import json
import pathlib
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLE = HERE.parent
LAGS = 8
LAST_TRAINING_QUARTER = "2014Q4"
RIDGE = 1e-3  # a little shrinkage: the lags are strongly correlated


def read_series():
    series = defaultdict(list)
    with open(EXAMPLE / "data" / "visitor_nights.csv", newline="") as f:
        for row in csv.DictReader(f):
            series[row["region"]].append((row["quarter"], float(row["nights"])))
    return {region: [v for _, v in sorted(values)] for region, values in series.items()}, {
        region: [q for q, _ in sorted(values)] for region, values in series.items()
    }


def training_windows(series, quarters):
    x, y = [], []
    for region, values in sorted(series.items()):
        cut = quarters[region].index(LAST_TRAINING_QUARTER) + 1
        values = np.array(values[:cut])
        for end in range(LAGS, len(values)):
            window = values[end - LAGS : end]
            scale = window.mean()
            x.append(window / scale)
            y.append(values[end] / scale)
    return np.array(x), np.array(y)


def fit(x, y):
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = RIDGE * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # no shrinkage on the intercept
    coefficients = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    return coefficients[:-1], coefficients[-1]


def graph(weights, bias):
    """next = (mean(lags) * ((lags / mean(lags)) @ w + b))"""
    nodes = [
        helper.make_node("ReduceMean", ["lags"], ["scale"], axes=[1], keepdims=1),
        helper.make_node("Div", ["lags", "scale"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "weights"], ["product"]),
        helper.make_node("Add", ["product", "bias"], ["scaled_next"]),
        helper.make_node("Mul", ["scaled_next", "scale"], ["next"]),
    ]
    initializers = [
        numpy_helper.from_array(weights.reshape(LAGS, 1).astype(np.float32), "weights"),
        numpy_helper.from_array(np.array([bias], dtype=np.float32), "bias"),
    ]
    g = helper.make_graph(
        nodes,
        "forecast_ar",
        [helper.make_tensor_value_info("lags", TensorProto.FLOAT, ["N", LAGS])],
        [helper.make_tensor_value_info("next", TensorProto.FLOAT, ["N", 1])],
        initializers,
    )
    model = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="cordon-forecast-train",
        producer_version="1",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    series, quarters = read_series()
    x, y = training_windows(series, quarters)
    weights, bias = fit(x, y)
    model = graph(weights, bias)
    out = EXAMPLE / "graphs" / "forecast_ar.onnx"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(model.SerializeToString())

    # The graph must agree with the numpy fit it came from.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    raw = x * 1.0  # windows are already scaled: mean 1, so the graph's scaling is the identity
    predicted = session.run(["next"], {"lags": raw.astype(np.float32)})[0][:, 0]
    expected = raw @ weights + bias
    assert np.max(np.abs(predicted - expected)) < 1e-4, np.max(np.abs(predicted - expected))
    rmse = float(np.sqrt(np.mean((expected - y) ** 2)))

    metrics = {
        "lags": LAGS,
        "trained_on": f"20 regions, quarters up to {LAST_TRAINING_QUARTER}",
        "windows": int(len(x)),
        "ridge": RIDGE,
        "weights_oldest_first": [round(float(w), 8) for w in weights],
        "bias": round(float(bias), 8),
        "in_sample_rmse_scaled": round(rmse, 8),
        "versions": {"numpy": np.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
    }
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
