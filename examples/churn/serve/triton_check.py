"""Scores the Telco table through a running `cordon serve` with NVIDIA's own clients
(`tritonclient`'s HTTP client, with binary and with JSON tensors, and its gRPC client), and
checks every probability is bit-identical to what `cordon run` wrote.

Usage: python triton_check.py --http 127.0.0.1:8000 --grpc 127.0.0.1:8001 \
           --token TOKEN --table examples/churn/data/telco_churn.csv \
           --expected out/churn_scores.csv [--rows-per-request 1000]

Prints one JSON line per client, and exits 1 if any probability differs.
"""

import argparse
import csv
import json
import struct
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

MODEL = "telco-churn"
TEXT = ["customerID", "TotalCharges", "Contract", "PaymentMethod", "InternetService",
        "PaperlessBilling", "TechSupport", "OnlineSecurity"]
INTEGERS = ["tenure", "SeniorCitizen"]
FLOATS = ["MonthlyCharges"]


def read_table(path):
    """The table's columns as the policy's request binding takes them (policies/churn-serve.toml):
    text as it is in the file, numbers parsed exactly (Python's float is correctly rounded)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for name in TEXT:
        columns[name] = np.array([r[name].encode() for r in rows], dtype=np.object_)
    for name in INTEGERS:
        columns[name] = np.array([int(r[name].strip()) for r in rows], dtype=np.int64)
    for name in FLOATS:
        columns[name] = np.array([float(r[name].strip()) for r in rows], dtype=np.float64)
    return columns, len(rows)


def read_expected(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["customerID"] for r in rows], [float(r["churn_probability"]) for r in rows]


DATATYPES = {np.dtype(np.int64): "INT64", np.dtype(np.float64): "FP64", np.dtype(np.object_): "BYTES"}


def score_http(url, token, columns, start, end, binary):
    client = httpclient.InferenceServerClient(url=url)
    inputs = []
    for name, values in columns.items():
        part = values[start:end]
        tensor = httpclient.InferInput(name, [len(part)], DATATYPES[part.dtype])
        tensor.set_data_from_numpy(part, binary_data=binary)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary)
               for name in ("customerID", "churn_probability", "cordon_scored")]
    result = client.infer(MODEL, inputs, outputs=outputs,
                          headers={"Authorization": f"Bearer {token}"})
    return result


def score_grpc(url, token, columns, start, end):
    client = grpcclient.InferenceServerClient(url=url)
    inputs = []
    for name, values in columns.items():
        part = values[start:end]
        tensor = grpcclient.InferInput(name, [len(part)], DATATYPES[part.dtype])
        tensor.set_data_from_numpy(part)
        inputs.append(tensor)
    return client.infer(MODEL, inputs, headers={"authorization": f"Bearer {token}"})


def bits(x):
    return struct.pack("<d", x)


def check(name, results, ids, expected):
    got_ids, got = [], []
    for result in results:
        got_ids += [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("customerID")]
        got += [float(v) for v in result.as_numpy("churn_probability")]
        assert all(result.as_numpy("cordon_scored")), "a row was not scored"
    mismatches = sum(1 for a, b in zip(got, expected) if bits(a) != bits(b))
    ok = got_ids == ids and len(got) == len(expected) and mismatches == 0
    print(json.dumps({"client": name, "rows": len(got), "ids_match": got_ids == ids,
                      "probabilities_differing": mismatches, "bit_identical": ok}))
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True)
    parser.add_argument("--grpc")
    parser.add_argument("--token", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--rows-per-request", type=int, default=1000)
    args = parser.parse_args()
    columns, rows = read_table(args.table)
    ids, expected = read_expected(args.expected)
    step = args.rows_per_request
    ranges = [(s, min(s + step, rows)) for s in range(0, rows, step)]
    ok = True
    for binary in (True, False):
        results = [score_http(args.http, args.token, columns, s, e, binary) for s, e in ranges]
        ok &= check("tritonclient.http " + ("binary" if binary else "json"), results, ids, expected)
    if args.grpc:
        results = [score_grpc(args.grpc, args.token, columns, s, e) for s, e in ranges]
        ok &= check("tritonclient.grpc", results, ids, expected)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
