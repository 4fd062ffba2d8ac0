//! Time labels as the consumer's data writes them, on the grid of a declared frequency.
//!
//! A label is read as a point in time, then as a step on the frequency's grid: quarters and
//! months count calendar months, weeks, days, hours and half-hours count minutes. The grid's
//! phase (which day of the week, which minute of the hour, which month of the quarter) is set by
//! the series' first label, so weeks may start on any weekday and quarters be labelled by their
//! first or last month. Forecast labels are written in the style of the series' last label.
//!
//! Accepted labels: `1998Q1` (quarterly only), `2016-03`, `2016-03-31`, and
//! `2014-01-01T00:30:00` or `2014-01-01 00:30` (seconds and a trailing `Z` are allowed; seconds
//! must be zero). The host casts a date or timestamp column to this text form.

use std::fmt;

/// How often a series has an observation: the `frequency` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Quarterly,
    Monthly,
    Weekly,
    Daily,
    Hourly,
    HalfHourly,
}

const MINUTES_PER_DAY: i64 = 24 * 60;

impl Frequency {
    /// Every frequency, by the name the `frequency` setting takes.
    pub const ALL: [(&'static str, Frequency); 6] = [
        ("quarterly", Frequency::Quarterly),
        ("monthly", Frequency::Monthly),
        ("weekly", Frequency::Weekly),
        ("daily", Frequency::Daily),
        ("hourly", Frequency::Hourly),
        ("half-hourly", Frequency::HalfHourly),
    ];

    pub fn from_name(name: &str) -> Option<Frequency> {
        Frequency::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        Frequency::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    /// The usual season length: a year of quarters, months or weeks, a week of days, a day of
    /// hours or half-hours. The `period` setting's value 0 stands for it.
    pub fn natural_period(self) -> usize {
        match self {
            Frequency::Quarterly => 4,
            Frequency::Monthly => 12,
            Frequency::Weekly => 52,
            Frequency::Daily => 7,
            Frequency::Hourly => 24,
            Frequency::HalfHourly => 48,
        }
    }

    /// One step of the grid.
    fn step(self) -> Step {
        match self {
            Frequency::Quarterly => Step::Months(3),
            Frequency::Monthly => Step::Months(1),
            Frequency::Weekly => Step::Minutes(7 * MINUTES_PER_DAY),
            Frequency::Daily => Step::Minutes(MINUTES_PER_DAY),
            Frequency::Hourly => Step::Minutes(60),
            Frequency::HalfHourly => Step::Minutes(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Months(i64),
    Minutes(i64),
}

/// How a label was written, so that forecast labels look like the data's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `1998Q1`
    Quarter,
    /// `2016-03`
    YearMonth,
    /// `2016-03-31`; `month_end` when the day was the last of its month.
    Date { day: u32, month_end: bool },
    /// `2014-01-01T00:30:00`, `2014-01-01 00:30`
    DateTime {
        separator: char,
        seconds: bool,
        zulu: bool,
    },
}

/// A point in time as a label gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Instant {
    /// Months since year 0 (year × 12 + month - 1).
    months: i64,
    /// Minutes since 1970-01-01T00:00.
    minutes: i64,
    style: Style,
}

/// A series' time grid: its frequency and its phase, fixed by its first label.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    frequency: Frequency,
    /// Months or minutes past a whole step of the first label (a quarter labelled by its last
    /// month has phase 2; weeks starting on a Monday have the Monday's phase).
    phase: i64,
}

/// A label placed on a grid: its step number and how it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub position: i64,
    style: Style,
    /// The time of day of a calendar-grid label written with one (kept for forecast labels).
    minute_of_day: i64,
}

impl Grid {
    /// The grid of a series whose first label is `first`.
    pub fn starting_at(frequency: Frequency, first: &str) -> Result<(Grid, Stamp), String> {
        let instant = parse(first, frequency)?;
        let phase = match frequency.step() {
            Step::Months(n) => instant.months.rem_euclid(n),
            Step::Minutes(n) => instant.minutes.rem_euclid(n),
        };
        let grid = Grid { frequency, phase };
        let stamp = grid.place(first, instant)?;
        Ok((grid, stamp))
    }

    /// `label` on this grid, or why it is not on it.
    pub fn stamp(&self, label: &str) -> Result<Stamp, String> {
        let instant = parse(label, self.frequency)?;
        self.place(label, instant)
    }

    fn place(&self, label: &str, instant: Instant) -> Result<Stamp, String> {
        let (value, step) = match self.frequency.step() {
            Step::Months(n) => (instant.months, n),
            Step::Minutes(n) => (instant.minutes, n),
        };
        if (value - self.phase).rem_euclid(step) != 0 {
            return Err(format!(
                "`{}` is not on the series' {} grid (set by its first label)",
                printable(label),
                self.frequency.name()
            ));
        }
        Ok(Stamp {
            position: (value - self.phase).div_euclid(step),
            style: instant.style,
            minute_of_day: instant.minutes.rem_euclid(MINUTES_PER_DAY),
        })
    }

    /// The label of step `position`, written like `like`.
    pub fn label(&self, position: i64, like: Stamp) -> String {
        match self.frequency.step() {
            Step::Months(n) => {
                let months = position * n + self.phase;
                let (year, month) = (months.div_euclid(12), months.rem_euclid(12) + 1);
                match like.style {
                    Style::Quarter => format!("{year}Q{}", (month - 1) / 3 + 1),
                    Style::YearMonth => format!("{year:04}-{month:02}"),
                    Style::Date { day, month_end } => {
                        let last = days_in_month(year, month as u32);
                        let day = if month_end { last } else { day.min(last) };
                        format!("{year:04}-{month:02}-{day:02}")
                    }
                    Style::DateTime { .. } => {
                        let days = days_from_civil(year, month as u32, 1);
                        datetime(days * MINUTES_PER_DAY + like.minute_of_day, like.style)
                    }
                }
            }
            Step::Minutes(n) => {
                let minutes = position * n + self.phase;
                match like.style {
                    Style::DateTime { .. } => datetime(minutes, like.style),
                    _ => {
                        let (y, m, d) = civil_from_days(minutes.div_euclid(MINUTES_PER_DAY));
                        format!("{y:04}-{m:02}-{d:02}")
                    }
                }
            }
        }
    }
}

fn datetime(minutes: i64, style: Style) -> String {
    let (y, m, d) = civil_from_days(minutes.div_euclid(MINUTES_PER_DAY));
    let of_day = minutes.rem_euclid(MINUTES_PER_DAY);
    let (hour, minute) = (of_day / 60, of_day % 60);
    let Style::DateTime {
        separator,
        seconds,
        zulu,
    } = style
    else {
        return format!("{y:04}-{m:02}-{d:02}");
    };
    format!(
        "{y:04}-{m:02}-{d:02}{separator}{hour:02}:{minute:02}{}{}",
        if seconds { ":00" } else { "" },
        if zulu { "Z" } else { "" }
    )
}

/// Reads one label; the error says what was expected for `frequency`.
fn parse(label: &str, frequency: Frequency) -> Result<Instant, String> {
    parse_label(label.trim(), frequency).ok_or_else(|| {
        let expected = match frequency {
            Frequency::Quarterly => "a quarter like 1998Q1 or a date like 1998-01-01",
            Frequency::Monthly => "a month like 2016-03 or a date like 2016-03-01",
            Frequency::Weekly | Frequency::Daily => "a date like 2016-03-07",
            Frequency::Hourly | Frequency::HalfHourly => {
                "a date and time like 2014-01-01T00:30:00 or 2014-01-01 00:30"
            }
        };
        format!(
            "`{}` is not {expected} (frequency = \"{}\")",
            printable(label),
            frequency.name()
        )
    })
}

fn parse_label(label: &str, frequency: Frequency) -> Option<Instant> {
    // 1998Q1: quarters only, where it means the quarter's first month.
    if let Some((year, quarter)) = label.split_once(['Q', 'q']) {
        if frequency != Frequency::Quarterly {
            return None;
        }
        let year: i64 = digits(year, 4)?;
        let quarter: i64 = digits(quarter, 1)?;
        if !(1..=4).contains(&quarter) {
            return None;
        }
        let months = year * 12 + (quarter - 1) * 3;
        let days = days_from_civil(year, (quarter * 3 - 2) as u32, 1);
        return Some(Instant {
            months,
            minutes: days * MINUTES_PER_DAY,
            style: Style::Quarter,
        });
    }
    let (date, time) = match label.find(['T', ' ']) {
        Some(at) => (
            label.get(..at)?,
            Some((label.get(at..)?.chars().next()?, label.get(at + 1..)?)),
        ),
        None => (label, None),
    };
    let mut parts = date.split('-');
    let year: i64 = digits(parts.next()?, 4)?;
    let month: i64 = digits(parts.next()?, 2)?;
    let day: Option<i64> = match parts.next() {
        Some(day) => Some(digits(day, 2)?),
        None => None,
    };
    if parts.next().is_some() || !(1..=12).contains(&month) {
        return None;
    }
    let month = month as u32;
    let months = year * 12 + i64::from(month) - 1;
    let Some(day) = day else {
        // 2016-03: a month, read as its first day.
        if time.is_some() {
            return None;
        }
        return Some(Instant {
            months,
            minutes: days_from_civil(year, month, 1) * MINUTES_PER_DAY,
            style: Style::YearMonth,
        });
    };
    let last = days_in_month(year, month);
    if !(1..=i64::from(last)).contains(&day) {
        return None;
    }
    let day = day as u32;
    let days = days_from_civil(year, month, day);
    let Some((separator, time)) = time else {
        return Some(Instant {
            months,
            minutes: days * MINUTES_PER_DAY,
            style: Style::Date {
                day,
                month_end: day == last,
            },
        });
    };
    let (time, zulu) = match time.strip_suffix('Z') {
        Some(time) => (time, true),
        None => (time, false),
    };
    let mut fields = time.split(':');
    let hour: i64 = digits(fields.next()?, 2)?;
    let minute: i64 = digits(fields.next()?, 2)?;
    let seconds = match fields.next() {
        // Seconds (and a fraction of them) must be zero: no grid here is finer than minutes.
        Some(s) => {
            if !s.chars().all(|c| c == '0' || c == '.') || s.is_empty() {
                return None;
            }
            true
        }
        None => false,
    };
    if fields.next().is_some() || hour > 23 || minute > 59 {
        return None;
    }
    Some(Instant {
        months,
        minutes: days * MINUTES_PER_DAY + hour * 60 + minute,
        style: Style::DateTime {
            separator,
            seconds,
            zulu,
        },
    })
}

/// A number of at most `width` ASCII digits (a year may have a sign-free 4 or fewer).
fn digits(text: &str, width: usize) -> Option<i64> {
    if text.is_empty() || text.len() > width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number from 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A label shown in an error: the consumer's own text, at most 40 characters, no controls.
pub(crate) fn printable(label: &str) -> String {
    label
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(frequency: Frequency, first: &str, steps: i64) -> Vec<String> {
        let (grid, stamp) = Grid::starting_at(frequency, first).unwrap();
        (1..=steps)
            .map(|k| grid.label(stamp.position + k, stamp))
            .collect()
    }

    #[test]
    fn quarters_months_and_dates_step_on_the_calendar() {
        assert_eq!(
            labels(Frequency::Quarterly, "2016Q3", 3),
            ["2016Q4", "2017Q1", "2017Q2"]
        );
        assert_eq!(
            labels(Frequency::Quarterly, "2016-03-31", 2),
            ["2016-06-30", "2016-09-30"]
        );
        assert_eq!(
            labels(Frequency::Monthly, "2019-11", 3),
            ["2019-12", "2020-01", "2020-02"]
        );
        assert_eq!(
            labels(Frequency::Monthly, "2020-01-31", 2),
            ["2020-02-29", "2020-03-31"]
        );
        assert_eq!(labels(Frequency::Monthly, "2020-01-15", 1), ["2020-02-15"]);
    }

    #[test]
    fn weeks_days_and_half_hours_step_by_minutes() {
        assert_eq!(
            labels(Frequency::Weekly, "2016-12-26", 2),
            ["2017-01-02", "2017-01-09"]
        );
        assert_eq!(
            labels(Frequency::Daily, "2016-02-28", 2),
            ["2016-02-29", "2016-03-01"]
        );
        assert_eq!(
            labels(Frequency::HalfHourly, "2014-12-31T23:00:00", 3),
            [
                "2014-12-31T23:30:00",
                "2015-01-01T00:00:00",
                "2015-01-01T00:30:00"
            ]
        );
        assert_eq!(
            labels(Frequency::Hourly, "2014-03-01 22:00", 2),
            ["2014-03-01 23:00", "2014-03-02 00:00"]
        );
    }

    #[test]
    fn positions_count_steps_and_off_grid_labels_are_named() {
        let (grid, first) = Grid::starting_at(Frequency::Weekly, "2016-01-04").unwrap();
        assert_eq!(
            grid.stamp("2016-01-18").unwrap().position - first.position,
            2
        );
        let error = grid.stamp("2016-01-19").unwrap_err();
        assert!(
            error.contains("`2016-01-19` is not on the series' weekly grid"),
            "{error}"
        );
        let (grid, first) = Grid::starting_at(Frequency::Quarterly, "1998Q1").unwrap();
        assert_eq!(grid.stamp("1999Q1").unwrap().position - first.position, 4);
        assert_eq!(
            grid.stamp("1998-04-01").unwrap().position - first.position,
            1
        );
    }

    #[test]
    fn bad_labels_say_what_the_frequency_expects() {
        for (frequency, label) in [
            (Frequency::Quarterly, "1998Q5"),
            (Frequency::Monthly, "1998Q1"),
            (Frequency::Monthly, "2016-13"),
            (Frequency::Daily, "2016-02-30"),
            (Frequency::HalfHourly, "2014-01-01T24:00"),
            (Frequency::HalfHourly, "2014-01-01T00:30:15"),
            (Frequency::Daily, "yesterday"),
        ] {
            let error = Grid::starting_at(frequency, label).unwrap_err();
            assert!(error.contains(&format!("`{label}` is not")), "{error}");
            assert!(error.contains(frequency.name()), "{error}");
        }
    }

    #[test]
    fn the_calendar_round_trips() {
        for days in [-800_000, -1, 0, 59, 365 * 30 + 7, 1_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
