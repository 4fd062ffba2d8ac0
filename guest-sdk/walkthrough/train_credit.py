"""Train the walkthrough's credit model: a scikit-learn Pipeline with text and number columns.

The applicants are synthetic (drawn from a fixed seed, so every run writes the same files):
age and income with blanks, the loan's purpose and the applicant's housing as text with
blanks, and their years in employment as ordered text. The pipeline imputes, scales, one-hot
and ordinal-encodes them in a ColumnTransformer and fits a logistic regression on the result,
as a provider would. It writes, into the directory given (default: here):
  credit.joblib   the fitted pipeline, for scripts/export-sklearn.py
  sample.csv      500 applicants the model never saw, blanks and an unseen purpose included,
                  for `cordon test`

Usage: python train_credit.py [DIR]   (with scripts/export-sklearn-requirements.txt installed)
"""

import pathlib
import sys

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

SEED = 20261204
PURPOSES = ["car", "education", "furniture", "business", "repairs"]
HOUSING = ["own", "rent", "free"]
EMPLOYMENT = ["none", "under 1 year", "1 to 4 years", "4 to 7 years", "7 years or more"]


def applicants(rng, n):
    frame = pd.DataFrame(
        {
            "applicant_id": [f"A{i:05d}" for i in range(n)],
            "age": rng.integers(19, 75, n).astype(float),
            "income": np.round(rng.lognormal(10.6, 0.5, n), 2),
            "purpose": rng.choice(PURPOSES, n, p=[0.3, 0.15, 0.25, 0.2, 0.1]),
            "housing": rng.choice(HOUSING, n, p=[0.6, 0.3, 0.1]),
            "employment": rng.choice(EMPLOYMENT, n),
        }
    ).astype({"purpose": object, "housing": object, "employment": object})
    # Blanks, as a real table has them.
    for column, share in [("age", 0.03), ("income", 0.05), ("purpose", 0.04), ("housing", 0.02)]:
        frame.loc[rng.random(n) < share, column] = np.nan
    return frame


def default_risk(frame, rng):
    employed = frame["employment"].map({level: i for i, level in enumerate(EMPLOYMENT)})
    logit = (
        -0.02 * (frame["age"].fillna(40) - 40)
        - 0.9 * (np.log(frame["income"].fillna(40000)) - 10.6)
        + frame["purpose"].map({"business": 0.8, "education": 0.3}).fillna(0.0)
        + frame["housing"].map({"rent": 0.5, "free": 0.2}).fillna(0.0)
        - 0.25 * employed
        + rng.normal(0, 0.5, len(frame))
    )
    return (logit > 0.0).astype(int)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    rng = np.random.default_rng(SEED)
    train = applicants(rng, 4000)
    label = default_risk(train, rng)
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        (
                            "numbers",
                            Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                            ["age", "income"],
                        ),
                        (
                            "categories",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                                    ("one_hot", OneHotEncoder(handle_unknown="ignore")),
                                ]
                            ),
                            ["purpose", "housing"],
                        ),
                        (
                            "employment",
                            OrdinalEncoder(
                                categories=[EMPLOYMENT], handle_unknown="use_encoded_value", unknown_value=-1
                            ),
                            ["employment"],
                        ),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    )
    pipeline.fit(train.drop(columns=["applicant_id"]), label)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out / "credit.joblib")
    sample = applicants(rng, 500)
    # A purpose the model never saw: the encoder ignores it (all zeros), as scikit-learn does.
    sample.loc[:4, "purpose"] = "vacation"
    sample.to_csv(out / "sample.csv", index=False)
    print(f"wrote {out / 'credit.joblib'} and {out / 'sample.csv'} (500 applicants)")


if __name__ == "__main__":
    main()
