//! The manifest's column domains, checked on every batch before it enters the sandbox: the
//! levels a text column may hold, the range of a number column, whether a column takes nulls.
//!
//! Against what: a model scores a value it never saw (a contract level its encoder does not
//! know, a tenure of -3) as confidently as one it knows, so a consumer's data drifting away
//! from what the provider trained on would go unnoticed. The check is on the host, on the
//! values exactly as the model would receive them (after the policy's masks), and the policy
//! chooses per binding whether such a value stops the run or is passed on and counted.

use std::collections::{BTreeMap, HashSet};

use cordon_config::grant::InputGrant;
use cordon_config::manifest::{ColumnSpec, ValueRange};
use cordon_config::policy::OutOfDomain;
use cordon_contract::data::{Batch, Column, ColumnValues};

use crate::sanitize;

/// Up to this many levels, a value is compared with each rather than hashed.
const FEW_LEVELS: usize = 16;

/// Most bytes of an offending value shown in an error.
const MAX_VALUE_SHOWN: usize = 64;

/// One value outside its column's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfDomainValue {
    /// The manifest's input (and the policy's `[bind.<input>]`).
    pub input: String,
    /// The model's column.
    pub column: String,
    /// The row in the batch, from 0.
    pub row: usize,
    /// The value as the consumer's terminal may show it (escaped, cut), or `null`.
    pub value: String,
    /// What the column takes: `one of the levels Month-to-month, One year, Two year`.
    pub expected: String,
}

impl std::fmt::Display for OutOfDomainValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "column `{}`: {} is outside the model's domain: the manifest declares {}",
            self.column, self.value, self.expected
        )
    }
}

/// One column's domain, ready to test values against.
struct ColumnDomain {
    name: String,
    levels: Option<HashSet<String>>,
    /// The levels as the manifest lists them, for messages.
    levels_listed: Vec<String>,
    range: Option<ValueRange>,
    unit: Option<String>,
    nullable: bool,
}

/// Every domain of one input, with the policy's choice of what a value outside one does.
pub struct DomainCheck {
    input: String,
    columns: Vec<ColumnDomain>,
    mode: OutOfDomain,
}

impl DomainCheck {
    pub fn new(grant: &InputGrant) -> DomainCheck {
        DomainCheck::of(grant.name.as_str(), &grant.domains, grant.out_of_domain)
    }

    pub fn of(input: &str, domains: &[ColumnSpec], mode: OutOfDomain) -> DomainCheck {
        DomainCheck {
            input: input.to_owned(),
            columns: domains
                .iter()
                .filter(|spec| spec.has_domain())
                .map(|spec| ColumnDomain {
                    name: spec.name.to_string(),
                    levels: spec
                        .levels
                        .as_ref()
                        .map(|levels| levels.iter().cloned().collect()),
                    levels_listed: spec.levels.clone().unwrap_or_default(),
                    range: spec.range,
                    unit: spec.unit.clone(),
                    nullable: spec.nullable,
                })
                .collect(),
            mode,
        }
    }

    pub fn mode(&self) -> OutOfDomain {
        self.mode
    }

    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The first value of `batch` outside its column's domain, whatever the policy's choice.
    pub fn first_violation(&self, batch: &Batch) -> Option<OutOfDomainValue> {
        self.columns
            .iter()
            .find_map(|domain| {
                let column = batch.columns.iter().find(|c| c.name == domain.name)?;
                domain.first_violation(column)
            })
            .map(|violation| OutOfDomainValue {
                input: self.input.clone(),
                ..violation
            })
    }

    /// Applies the policy's choice to `batch`: under `refuse` the first value outside its
    /// domain is the error; under `count` each column's such values are added to `counts`.
    pub fn apply(
        &self,
        batch: &Batch,
        counts: &mut BTreeMap<String, u64>,
    ) -> Result<(), OutOfDomainValue> {
        match self.mode {
            OutOfDomain::Refuse => match self.first_violation(batch) {
                Some(violation) => Err(violation),
                None => Ok(()),
            },
            OutOfDomain::Count => {
                for domain in &self.columns {
                    let Some(column) = batch.columns.iter().find(|c| c.name == domain.name) else {
                        continue;
                    };
                    let outside = domain.count_violations(column);
                    if outside > 0 {
                        *counts.entry(domain.name.clone()).or_default() += outside;
                    }
                }
                Ok(())
            }
        }
    }
}

impl ColumnDomain {
    /// Whether the value at `row` is outside the domain.
    fn outside(&self, column: &Column, row: usize) -> bool {
        if !column.validity.is_empty() && !column.validity.get(row).copied().unwrap_or(true) {
            return !self.nullable;
        }
        match &column.values {
            ColumnValues::Text(text) => match (&self.levels, text.get(row)) {
                // A few levels are found faster by comparing than by hashing.
                (Some(_), Some(value)) if self.levels_listed.len() <= FEW_LEVELS => {
                    !self.levels_listed.iter().any(|level| level == value)
                }
                (Some(levels), Some(value)) => !levels.contains(value),
                _ => false,
            },
            values => match (self.range, number(values, row)) {
                (Some(range), Some(value)) => !range.contains(value),
                _ => false,
            },
        }
    }

    fn first_violation(&self, column: &Column) -> Option<OutOfDomainValue> {
        let row = (0..column.values.len()).find(|&row| self.outside(column, row))?;
        Some(OutOfDomainValue {
            input: String::new(),
            column: self.name.clone(),
            row,
            value: self.shown(column, row),
            expected: self.expected(),
        })
    }

    fn count_violations(&self, column: &Column) -> u64 {
        (0..column.values.len())
            .filter(|&row| self.outside(column, row))
            .count() as u64
    }

    fn shown(&self, column: &Column, row: usize) -> String {
        if !column.validity.is_empty() && !column.validity.get(row).copied().unwrap_or(true) {
            return "null".to_owned();
        }
        match &column.values {
            ColumnValues::Text(text) => format!(
                "`{}`",
                sanitize(text.get(row).unwrap_or_default(), MAX_VALUE_SHOWN)
            ),
            values => number(values, row)
                .map(|value| format!("`{value}`"))
                .unwrap_or_default(),
        }
    }

    /// What the column takes, in the manifest's words (levels are the provider's strings:
    /// escaped and cut, the list cut after a few).
    fn expected(&self) -> String {
        let mut parts = Vec::new();
        if self.levels.is_some() {
            const SHOWN: usize = 12;
            let mut listed: Vec<String> = self
                .levels_listed
                .iter()
                .take(SHOWN)
                .map(|level| sanitize(level, MAX_VALUE_SHOWN))
                .collect();
            if self.levels_listed.len() > SHOWN {
                listed.push(format!("and {} more", self.levels_listed.len() - SHOWN));
            }
            parts.push(format!("levels = [{}]", listed.join(", ")));
        }
        if let Some(range) = self.range {
            let unit = self
                .unit
                .as_ref()
                .map(|unit| format!(" {}", sanitize(unit, 32)))
                .unwrap_or_default();
            parts.push(format!("range = {range}{unit}"));
        }
        if !self.nullable {
            parts.push("nullable = false".to_owned());
        }
        parts.join(", ")
    }
}

/// A number column's value at `row` as f64 (int64 beyond 2^53 rounds, which cannot move it
/// across a range's end by more than the rounding).
fn number(values: &ColumnValues, row: usize) -> Option<f64> {
    match values {
        ColumnValues::Float64(v) => v.get(row).copied(),
        ColumnValues::Float32(v) => v.get(row).map(|&x| f64::from(x)),
        ColumnValues::Int64(v) => v.get(row).map(|&x| x as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_config::manifest::ColumnType;
    use cordon_config::names::Name;
    use cordon_contract::data::TextValues;

    fn spec(name: &str, ty: ColumnType) -> ColumnSpec {
        ColumnSpec::new(Name::try_from(name.to_owned()).unwrap(), ty)
    }

    fn batch() -> Batch {
        Batch {
            num_rows: 3,
            columns: vec![
                Column {
                    name: "contract".into(),
                    values: ColumnValues::Text(
                        TextValues::from_strs(["One year", "monthly", ""]).unwrap(),
                    ),
                    validity: vec![true, true, false],
                },
                Column {
                    name: "tenure".into(),
                    values: ColumnValues::Int64(vec![3, -3, 500]),
                    validity: Vec::new(),
                },
            ],
        }
    }

    fn domains() -> Vec<ColumnSpec> {
        let mut contract = spec("contract", ColumnType::Text);
        contract.levels = Some(vec!["Month-to-month".into(), "One year".into()]);
        contract.nullable = false;
        let mut tenure = spec("tenure", ColumnType::Int64);
        tenure.range = Some(ValueRange(0.0, 120.0));
        tenure.unit = Some("months".into());
        vec![contract, tenure]
    }

    #[test]
    fn refuse_names_the_first_value_outside() {
        let check = DomainCheck::of("customers", &domains(), OutOfDomain::Refuse);
        let violation = check.apply(&batch(), &mut BTreeMap::new()).unwrap_err();
        assert_eq!(violation.row, 1);
        assert_eq!(
            violation.to_string(),
            "column `contract`: `monthly` is outside the model's domain: the manifest declares levels = [Month-to-month, One year], nullable = false"
        );
    }

    #[test]
    fn count_counts_every_value_outside_nulls_included() {
        let check = DomainCheck::of("customers", &domains(), OutOfDomain::Count);
        let mut counts = BTreeMap::new();
        check.apply(&batch(), &mut counts).unwrap();
        check.apply(&batch(), &mut counts).unwrap();
        assert_eq!(counts.get("contract"), Some(&4));
        assert_eq!(counts.get("tenure"), Some(&4));
    }

    #[test]
    fn a_nullable_column_takes_nulls_and_nan_is_outside_any_range() {
        let mut domains = domains();
        domains[0].nullable = true;
        domains[0].levels = None;
        let mut float = spec("x", ColumnType::Float64);
        float.range = Some(ValueRange(0.0, 1.0));
        domains.push(float);
        let check = DomainCheck::of("customers", &domains, OutOfDomain::Refuse);
        let mut batch = batch();
        batch.columns[1].values = ColumnValues::Int64(vec![0, 120, 1]);
        batch.columns.push(Column {
            name: "x".into(),
            values: ColumnValues::Float64(vec![0.5, f64::NAN, 1.0]),
            validity: Vec::new(),
        });
        let violation = check.first_violation(&batch).unwrap();
        assert_eq!((violation.column.as_str(), violation.row), ("x", 1));
        assert_eq!(violation.value, "`NaN`");
    }
}
