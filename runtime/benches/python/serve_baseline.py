"""The serving baseline of the load benchmark: what a data team would put up today, a FastAPI
app around onnxruntime. It speaks the same Open Inference Protocol JSON as `cordon serve`
(POST /v2/models/telco-churn/infer with the policy's request tensors), encodes the same 17
features as the churn guest (baseline.py's `encode`), and scores them with one ONNX Runtime
thread, as the policy does. Served by uvicorn with one worker process.

Usage: python serve_baseline.py <graph.onnx> <port>
"""

import sys

import numpy as np
import onnxruntime as ort
import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from baseline import encode

RENAMED = {
    "customerID": "customerID", "tenure": "tenure", "MonthlyCharges": "MonthlyCharges",
    "TotalCharges": "TotalCharges", "SeniorCitizen": "SeniorCitizen", "Contract": "Contract",
    "PaymentMethod": "PaymentMethod", "InternetService": "InternetService",
    "PaperlessBilling": "PaperlessBilling", "TechSupport": "TechSupport",
    "OnlineSecurity": "OnlineSecurity",
}


def make_app(graph):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.post("/v2/models/telco-churn/infer")
    async def infer(request: Request):
        body = await request.json()
        columns = {tensor["name"]: tensor["data"] for tensor in body["inputs"]}
        df = pd.DataFrame({name: columns[name] for name in RENAMED})
        features = encode(df)
        probabilities = session.run(["probabilities"], {"features": features})[0][:, 1]
        return JSONResponse({
            "model_name": "telco-churn",
            "outputs": [
                {"name": "customerID", "datatype": "BYTES", "shape": [len(df)],
                 "data": list(columns["customerID"])},
                {"name": "churn_probability", "datatype": "FP64", "shape": [len(df)],
                 "data": probabilities.astype(np.float64).tolist()},
            ],
        })

    return app


if __name__ == "__main__":
    graph, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(make_app(graph), host="127.0.0.1", port=port, log_level="warning")
