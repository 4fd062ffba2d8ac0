"""Train the Telco churn model and export it as ONNX.

A provider runs this on its own copy of the public IBM Telco sample; consumers never need it.
It writes, next to the example:
  graphs/churn_gbt.onnx          the graph the guest calls through wasi:nn (input `features`,
                                 float32 [N, 17]; outputs `label` and `probabilities` [N, 2])
  training/reference.csv         customerID, the 17 encoded features, and ONNX Runtime's churn
                                 probability for every row: the tests compare Cordon against it
  training/metrics.json          held-out AUC and the training set-up

The feature encoding here is the contract with the guest crate (model/src/features.rs): change
both together, and the tests will tell you if they disagree.

Usage: python training/train.py   (from examples/churn, with training/requirements.txt installed)
"""

import csv
import json
import pathlib

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLE = HERE.parent
SEED = 20261122

CONTRACTS = ["Month-to-month", "One year", "Two year"]
PAYMENT_METHODS = [
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
]
INTERNET_SERVICES = ["DSL", "Fiber optic", "No"]

FEATURE_NAMES = (
    ["tenure", "monthly_charges", "total_charges", "senior_citizen"]
    + [f"contract={c}" for c in CONTRACTS]
    + [f"payment_method={p}" for p in PAYMENT_METHODS]
    + [f"internet_service={s}" for s in INTERNET_SERVICES]
    + ["paperless_billing", "tech_support", "online_security"]
)


def one_hot(value, categories):
    # An unseen category encodes as all zeros, the same as in the guest.
    return [1.0 if value == c else 0.0 for c in categories]


def encode(row):
    # TotalCharges is blank for the 11 customers with tenure 0: they have not been billed yet.
    total = row["TotalCharges"].strip()
    return (
        [
            float(row["tenure"]),
            float(row["MonthlyCharges"]),
            float(total) if total else 0.0,
            float(row["SeniorCitizen"]),
        ]
        + one_hot(row["Contract"], CONTRACTS)
        + one_hot(row["PaymentMethod"], PAYMENT_METHODS)
        + one_hot(row["InternetService"], INTERNET_SERVICES)
        + [
            1.0 if row["PaperlessBilling"] == "Yes" else 0.0,
            1.0 if row["TechSupport"] == "Yes" else 0.0,
            1.0 if row["OnlineSecurity"] == "Yes" else 0.0,
        ]
    )


def main():
    with open(EXAMPLE / "data" / "telco_churn.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["customerID"] for r in rows]
    # float32 is what the guest hands to the graph, so train and score on exactly those values.
    x = np.array([encode(r) for r in rows], dtype=np.float32)
    y = np.array([1 if r["Churn"] == "Yes" else 0 for r in rows], dtype=np.int64)

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SEED
    )
    model = GradientBoostingClassifier(
        n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.9, random_state=SEED
    )
    model.fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])

    onnx_model = convert_sklearn(
        model,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onnx_model.doc_string = "Telco churn, gradient-boosted trees; input: 17 encoded features"
    graph_path = EXAMPLE / "graphs" / "churn_gbt.onnx"
    graph_path.write_bytes(onnx_model.SerializeToString())

    session = ort.InferenceSession(str(graph_path), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"features": x})[0][:, 1]
    onnx_auc = roc_auc_score(y_test, session.run(["probabilities"], {"features": x_test})[0][:, 1])

    with open(HERE / "reference.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["customerID"] + FEATURE_NAMES + ["churn_probability"])
        for customer_id, features, p in zip(ids, x, probabilities):
            writer.writerow(
                [customer_id] + [repr(float(v)) for v in features] + [repr(float(p))]
            )

    metrics = {
        "rows": len(rows),
        "train_rows": len(y_train),
        "held_out_rows": len(y_test),
        "held_out_churn_rate": round(float(y_test.mean()), 4),
        "held_out_auc_sklearn": round(float(auc), 4),
        "held_out_auc_onnxruntime": round(float(onnx_auc), 4),
        "model": "GradientBoostingClassifier(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.9)",
        "seed": SEED,
        "features": FEATURE_NAMES,
    }
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"held-out AUC {auc:.4f} (sklearn), {onnx_auc:.4f} (ONNX Runtime); wrote {graph_path}")


if __name__ == "__main__":
    main()
