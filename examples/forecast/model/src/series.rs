//! One series as the host hands it over: time labels and values, in time order, read onto the
//! frequency's grid with every missing period (a gap between labels, or an empty value) as NaN.

use crate::time::{Frequency, Grid, Stamp, printable};

/// A series may be missing at most this share of its periods: beyond it the methods would
/// model the filling, not the data (and a far-off label must not make the guest allocate a
/// vast series).
pub const MAX_MISSING_SHARE: f64 = 0.5;

/// A series on its grid.
#[derive(Debug, Clone)]
pub struct Series {
    grid: Grid,
    /// The last label, as written: forecast labels follow it, in its style.
    last: Stamp,
    last_label: String,
    /// One value per period from the first label to the last, NaN where missing.
    pub values: Vec<f64>,
    /// How many of them are missing.
    pub missing: usize,
}

impl Series {
    /// Reads `labels` and `values` (one per row, rows in time order). Refuses a label that is
    /// not of the frequency, two rows for one period, labels out of order, and a series more
    /// than [`MAX_MISSING_SHARE`] missing, naming the labels at fault.
    pub fn read(
        frequency: Frequency,
        labels: &[&str],
        values: &[Option<f64>],
    ) -> Result<Series, String> {
        // No series may span more periods than this; checked before a gap is allocated.
        let longest = (labels.len() as f64 / (1.0 - MAX_MISSING_SHARE)).floor() as usize;
        let mut rows = labels.iter().copied().zip(values.iter().copied());
        let Some((first_label, first_value)) = rows.next() else {
            return Err("an empty series".into());
        };
        let (grid, first) = Grid::starting_at(frequency, first_label)?;
        let mut series = Series {
            grid,
            last: first,
            last_label: first_label.to_owned(),
            values: vec![first_value.unwrap_or(f64::NAN)],
            missing: 0,
        };
        for (label, value) in rows {
            let stamp = grid.stamp(label)?;
            let step = stamp.position - series.last.position;
            if step <= 0 {
                return Err(format!(
                    "`{}` comes after `{}`: {}",
                    printable(label),
                    printable(&series.last_label),
                    if step == 0 {
                        "two rows for one period"
                    } else {
                        "the labels are out of order (does the policy's time column sort as text in time order?)"
                    }
                ));
            }
            // Periods between the two labels are missing. Checked before allocating them.
            let gap = usize::try_from(step - 1).unwrap_or(usize::MAX);
            let length = series.values.len().saturating_add(gap).saturating_add(1);
            if length > longest {
                return Err(format!(
                    "the series jumps from `{}` to `{}`: {gap} missing periods would leave fewer than half of its {length} periods observed",
                    printable(&series.last_label),
                    printable(label)
                ));
            }
            series.values.extend(std::iter::repeat_n(f64::NAN, gap));
            series.values.push(value.unwrap_or(f64::NAN));
            series.last = stamp;
            series.last_label = label.to_owned();
        }
        // Leading missing values carry nothing: the series starts at its first value.
        let leading = series.values.iter().take_while(|v| v.is_nan()).count();
        if leading == series.values.len() {
            return Err("the series has no values".into());
        }
        series.values.drain(..leading);
        series.missing = series.values.iter().filter(|v| v.is_nan()).count();
        if series.missing as f64 > series.values.len() as f64 * MAX_MISSING_SHARE {
            return Err(format!(
                "{} of its {} periods are missing: more than half",
                series.missing,
                series.values.len()
            ));
        }
        Ok(series)
    }

    /// The last label as the data wrote it (for messages).
    pub fn last_label(&self) -> String {
        printable(&self.last_label)
    }

    /// The labels of the `horizon` periods after the last, in the data's style.
    pub fn labels_after(&self, horizon: usize) -> Vec<String> {
        (1..=horizon as i64)
            .map(|k| self.grid.label(self.last.position + k, self.last))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(frequency: Frequency, rows: &[(&str, Option<f64>)]) -> Result<Series, String> {
        let labels: Vec<&str> = rows.iter().map(|(l, _)| *l).collect();
        let values: Vec<Option<f64>> = rows.iter().map(|(_, v)| *v).collect();
        Series::read(frequency, &labels, &values)
    }

    #[test]
    fn gaps_and_empty_values_become_missing_periods() {
        let series = read(
            Frequency::Weekly,
            &[
                ("2016-01-04", Some(1.0)),
                ("2016-01-11", None),
                ("2016-01-25", Some(3.0)),
                ("2016-02-01", Some(4.0)),
            ],
        )
        .unwrap();
        assert_eq!(series.values.len(), 5);
        assert_eq!(series.missing, 2);
        assert!(series.values[1].is_nan() && series.values[2].is_nan());
        assert_eq!(series.labels_after(2), ["2016-02-08", "2016-02-15"]);
    }

    #[test]
    fn leading_empty_values_are_dropped() {
        let series = read(
            Frequency::Monthly,
            &[
                ("2016-01", None),
                ("2016-02", Some(2.0)),
                ("2016-03", Some(3.0)),
            ],
        )
        .unwrap();
        assert_eq!(series.values, [2.0, 3.0]);
        assert_eq!(series.labels_after(1), ["2016-04"]);
    }

    #[test]
    fn bad_series_are_refused_naming_the_labels() {
        let twice = read(
            Frequency::Monthly,
            &[("2016-01", Some(1.0)), ("2016-01", Some(2.0))],
        )
        .unwrap_err();
        assert!(twice.contains("two rows for one period"), "{twice}");
        let backwards = read(
            Frequency::Monthly,
            &[("2016-02", Some(1.0)), ("2016-01", Some(2.0))],
        )
        .unwrap_err();
        assert!(backwards.contains("out of order"), "{backwards}");
        // A far-off label is refused before anything is allocated for the gap.
        let far = read(
            Frequency::HalfHourly,
            &[
                ("2014-01-01T00:00:00", Some(1.0)),
                ("9999-01-01T00:00:00", Some(2.0)),
            ],
        )
        .unwrap_err();
        assert!(far.contains("jumps from `2014-01-01T00:00:00`"), "{far}");
        let empty = read(Frequency::Daily, &[("2016-01-01", None)]).unwrap_err();
        assert!(empty.contains("no values"), "{empty}");
    }
}
