"""statsmodels' ETS on a backtest's cuts, for the comparison table in ../README.md.

Reads a backtest input (series,time,value: `forecast-accuracy origins` writes it, and Cordon
forecasts the same file) and writes, in the CSV Cordon writes, each series' forecast and
80%/95% prediction intervals from statsmodels 0.15 `ETSModel`: additive error, additive damped
trend, additive seasonality of the given period (the closest ETS form to the forecaster's
combination), fitted by maximum likelihood, intervals analytic. ETS cannot take missing values:
a gap is filled by linear interpolation first (the forecaster itself skips them).

Usage: python compare/ets.py <input.csv> <frequency> <period> <horizon> > ets.csv
"""

import datetime
import sys
import warnings

import numpy as np
import pandas as pd
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

STEP = {
    "quarterly": ("months", 3),
    "monthly": ("months", 1),
    "weekly": ("minutes", 7 * 24 * 60),
    "daily": ("minutes", 24 * 60),
    "hourly": ("minutes", 60),
    "half-hourly": ("minutes", 30),
}


def parse(label):
    """A label as (months since year 0, timestamp), and a function writing others like it."""
    if "Q" in label:
        year, quarter = label.split("Q")
        months = int(year) * 12 + (int(quarter) - 1) * 3
        return months, None, lambda m, _: f"{m // 12}Q{m % 12 // 3 + 1}"
    if len(label) == 7:
        year, month = label.split("-")
        months = int(year) * 12 + int(month) - 1
        return months, None, lambda m, _: f"{m // 12:04d}-{m % 12 + 1:02d}"
    stamp = datetime.datetime.fromisoformat(label)
    if len(label) == 10:
        return None, stamp, lambda _, t: t.date().isoformat()
    return None, stamp, lambda _, t: t.isoformat(sep=label[10])


def position(label, frequency):
    months, stamp, _ = parse(label)
    unit, step = STEP[frequency]
    if unit == "months":
        return months // step
    return int((stamp - datetime.datetime(1970, 1, 1)).total_seconds() // 60) // step


def label_at(last_label, k, frequency):
    months, stamp, write = parse(last_label)
    unit, step = STEP[frequency]
    if unit == "months":
        return write(months + k * step, None)
    return write(None, stamp + datetime.timedelta(minutes=k * step))


def main():
    path, frequency, period, horizon = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    table = pd.read_csv(path, dtype={"series": str, "time": str})
    print("series,time,method,yhat,lo80,hi80,lo95,hi95")
    for name, rows in table.groupby("series", sort=True):
        positions = np.array([position(t, frequency) for t in rows["time"]])
        values = rows["value"].to_numpy(dtype=float)
        grid = np.full(positions.max() - positions.min() + 1, np.nan)
        grid[positions - positions.min()] = values
        y = pd.Series(grid).interpolate(limit_direction="both")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ETSModel(
                y, error="add", trend="add", damped_trend=True, seasonal="add", seasonal_periods=period
            )
            fit = model.fit(disp=False, maxiter=2000)
            prediction = fit.get_prediction(start=len(y), end=len(y) + horizon - 1)
            i80 = prediction.summary_frame(alpha=0.2)
            i95 = prediction.summary_frame(alpha=0.05)
        last = rows["time"].iloc[-1]
        for h in range(horizon):
            print(
                f"{name},{label_at(last, h + 1, frequency)},ets-AAdA,{float(i80['mean'].iloc[h])!r},"
                f"{float(i80['pi_lower'].iloc[h])!r},{float(i80['pi_upper'].iloc[h])!r},"
                f"{float(i95['pi_lower'].iloc[h])!r},{float(i95['pi_upper'].iloc[h])!r}"
            )


if __name__ == "__main__":
    main()
