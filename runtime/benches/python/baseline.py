"""The Python baseline for the end-to-end benchmark: what a data team would run today.

pandas reads the table (CSV or Parquet), encodes the same 17 features the churn guest encodes
(examples/churn/model/src/features.rs, training/train.py), onnxruntime's
`InferenceSession.run` scores them in batches of the same size Cordon uses, and pandas writes
customerID and churn_probability (CSV or Parquet, by extension). One ONNX Runtime thread, like
the policy Cordon runs under. Prints one JSON line: rows, seconds, rows/s.

Usage: python baseline.py <graph.onnx> <table.csv|.parquet> <out.csv|.parquet> [batch rows]
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
import pandas as pd

CONTRACTS = ["Month-to-month", "One year", "Two year"]
PAYMENT_METHODS = [
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
]
INTERNET_SERVICES = ["DSL", "Fiber optic", "No"]
COLUMNS = [
    "customerID", "tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen", "Contract",
    "PaymentMethod", "InternetService", "PaperlessBilling", "TechSupport", "OnlineSecurity",
]


def encode(df):
    total = pd.to_numeric(df["TotalCharges"].astype(str).str.strip(), errors="coerce").fillna(0.0)
    parts = [
        df["tenure"].astype(np.float32),
        df["MonthlyCharges"].astype(np.float32),
        total.astype(np.float32),
        df["SeniorCitizen"].astype(np.float32),
    ]
    for column, categories in [
        ("Contract", CONTRACTS),
        ("PaymentMethod", PAYMENT_METHODS),
        ("InternetService", INTERNET_SERVICES),
    ]:
        parts += [(df[column] == c).astype(np.float32) for c in categories]
    parts += [(df[c] == "Yes").astype(np.float32) for c in ["PaperlessBilling", "TechSupport", "OnlineSecurity"]]
    return np.ascontiguousarray(np.column_stack(parts), dtype=np.float32)


def main():
    graph, table, out = sys.argv[1:4]
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    if table.endswith(".parquet"):
        df = pd.read_parquet(table, columns=COLUMNS)
    else:
        df = pd.read_csv(table, usecols=COLUMNS, dtype={"TotalCharges": str})
    features = encode(df)
    scores = np.empty(len(df), dtype=np.float64)
    for start in range(0, len(df), batch):
        probabilities = session.run(["probabilities"], {"features": features[start : start + batch]})[0]
        scores[start : start + batch] = probabilities[:, 1]
    result = pd.DataFrame({"customerID": df["customerID"], "churn_probability": scores})
    if out.endswith(".parquet"):
        result.to_parquet(out, index=False)
    else:
        result.to_csv(out, index=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": len(df), "seconds": seconds, "rows_per_s": len(df) / seconds}))


if __name__ == "__main__":
    main()
