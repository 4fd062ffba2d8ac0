"""Train two alternative churn graphs for the benchmarks: logistic regression and an MLP.

Same features, same split and the same interface as graphs/churn_gbt.onnx (input `features`
float32 [N, 17]; outputs `label` and `probabilities` [N, 2]), so the churn guest runs either
one unchanged when a package names it `churn_gbt`. BENCHMARKS.md compares the three graphs
inside the sandbox and natively. Writes graphs/churn_logreg.onnx, graphs/churn_mlp.onnx and
training/alternatives.json (held-out AUC of each).

Usage: python training/train_alternatives.py   (from examples/churn, with
training/requirements.txt installed)
"""

import csv
import json

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from train import EXAMPLE, FEATURE_NAMES, HERE, SEED, encode

MODELS = {
    "churn_logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "churn_mlp": lambda: make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=400, early_stopping=True, random_state=SEED),
    ),
}


def main():
    with open(EXAMPLE / "data" / "telco_churn.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([encode(r) for r in rows], dtype=np.float32)
    y = np.array([1 if r["Churn"] == "Yes" else 0 for r in rows], dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SEED
    )
    report = {}
    for name, make in MODELS.items():
        model = make().fit(x_train, y_train)
        onnx_model = convert_sklearn(
            model,
            initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
            options={id(model.steps[-1][1]): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
        path = EXAMPLE / "graphs" / f"{name}.onnx"
        path.write_bytes(onnx_model.SerializeToString())
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        assert names == ["label", "probabilities"], names
        auc = roc_auc_score(y_test, session.run(["probabilities"], {"features": x_test})[0][:, 1])
        report[name] = {"held_out_auc_onnxruntime": round(float(auc), 4), "model": str(model.steps[-1][1])}
        print(f"{name}: held-out AUC {auc:.4f}; wrote {path}")
    (HERE / "alternatives.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
