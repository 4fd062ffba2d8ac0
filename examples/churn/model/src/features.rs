//! Feature encoding: the consumer's columns to the 17 float32 features the graph was trained on.
//!
//! This is the contract with `training/train.py` (`encode`): the same order, the same category
//! lists, the same handling of blanks. `tests/e2e/churn.rs` checks the scores of every Telco
//! row against the ones the training script wrote (`training/reference.csv`).

use cordon_guest::{Batch, ModelError};

pub const CONTRACTS: [&str; 3] = ["Month-to-month", "One year", "Two year"];
pub const PAYMENT_METHODS: [&str; 4] = [
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
];
pub const INTERNET_SERVICES: [&str; 3] = ["DSL", "Fiber optic", "No"];

/// Features per row.
pub const FEATURE_COUNT: usize =
    4 + CONTRACTS.len() + PAYMENT_METHODS.len() + INTERNET_SERVICES.len() + 3;

/// One row's raw values, as the consumer's table holds them.
#[derive(Debug, Clone, Default)]
pub struct Customer<'a> {
    pub tenure: Option<i64>,
    pub monthly_charges: Option<f64>,
    /// Blank for customers not billed yet (tenure 0).
    pub total_charges: Option<f64>,
    pub senior_citizen: Option<i64>,
    pub contract: Option<&'a str>,
    pub payment_method: Option<&'a str>,
    pub internet_service: Option<&'a str>,
    pub paperless_billing: Option<&'a str>,
    pub tech_support: Option<&'a str>,
    pub online_security: Option<&'a str>,
}

/// One row's features, in the graph's order.
pub type Features = [f32; FEATURE_COUNT];

fn one_hot<const N: usize>(value: Option<&str>, categories: &[&str; N]) -> [f32; N] {
    // An unseen or missing category encodes as all zeros, as in training.
    categories.map(|c| if value == Some(c) { 1.0 } else { 0.0 })
}

fn yes(value: Option<&str>) -> f32 {
    if value == Some("Yes") { 1.0 } else { 0.0 }
}

/// One row's features. A fixed-size array rather than pushes onto a vector: no capacity check
/// per feature, which matters on WebAssembly, where this loop is most of a cheap graph's time.
#[inline]
pub fn encode(customer: &Customer<'_>) -> Features {
    let [month_to_month, one_year, two_year] = one_hot(customer.contract, &CONTRACTS);
    let [electronic_check, mailed_check, bank_transfer, credit_card] =
        one_hot(customer.payment_method, &PAYMENT_METHODS);
    let [dsl, fiber_optic, no_internet] = one_hot(customer.internet_service, &INTERNET_SERVICES);
    // The casts to f32 round exactly as numpy's float64 -> float32 conversion does.
    [
        customer.tenure.unwrap_or(0) as f32,
        customer.monthly_charges.unwrap_or(0.0) as f32,
        customer.total_charges.unwrap_or(0.0) as f32,
        customer.senior_citizen.unwrap_or(0) as f32,
        month_to_month,
        one_year,
        two_year,
        electronic_check,
        mailed_check,
        bank_transfer,
        credit_card,
        dsl,
        fiber_optic,
        no_internet,
        yes(customer.paperless_billing),
        yes(customer.tech_support),
        yes(customer.online_security),
    ]
}

/// Encodes every row of a batch, row-major, `FEATURE_COUNT` features per row.
pub fn encode_batch(input: &Batch) -> Result<Vec<f32>, ModelError> {
    let tenure = input.i64s("tenure")?;
    let monthly_charges = input.f64s("monthly_charges")?;
    let total_charges = input.f64s("total_charges")?;
    let senior_citizen = input.i64s("senior_citizen")?;
    let contract = input.texts("contract")?;
    let payment_method = input.texts("payment_method")?;
    let internet_service = input.texts("internet_service")?;
    let paperless_billing = input.texts("paperless_billing")?;
    let tech_support = input.texts("tech_support")?;
    let online_security = input.texts("online_security")?;

    // The loop reads raw values: a null holds the contract's placeholder (0 or ""), which
    // encodes exactly as a missing value does (0, no category). Zipped slices and offsets
    // carry no per-value validity or bounds test, only one end test per row, which matters on
    // WebAssembly, where every branch is also a fuel update. One capacity check per row.
    let numbers = tenure
        .values()
        .iter()
        .zip(monthly_charges.values())
        .zip(total_charges.values())
        .zip(senior_citizen.values());
    let categories = contract
        .values()
        .zip(payment_method.values())
        .zip(internet_service.values());
    let flags = paperless_billing
        .values()
        .zip(tech_support.values())
        .zip(online_security.values());
    let mut rows: Vec<Features> = Vec::with_capacity(input.num_rows());
    for (
        (((&tenure, &monthly_charges), &total_charges), &senior_citizen),
        (
            ((contract, payment_method), internet_service),
            ((paperless_billing, tech_support), online_security),
        ),
    ) in numbers.zip(categories.zip(flags))
    {
        rows.push(encode(&Customer {
            tenure: Some(tenure),
            monthly_charges: Some(monthly_charges),
            total_charges: Some(total_charges),
            senior_citizen: Some(senior_citizen),
            contract: Some(contract),
            payment_method: Some(payment_method),
            internet_service: Some(internet_service),
            paperless_billing: Some(paperless_billing),
            tech_support: Some(tech_support),
            online_security: Some(online_security),
        }));
    }
    if rows.len() != input.num_rows() {
        return Err(ModelError::InvalidInput(format!(
            "a column does not hold one value for each of the batch's {} rows",
            input.num_rows()
        )));
    }
    Ok(rows.into_flattened())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_telco_row_matches_training() {
        // 7590-VHVEG from the Telco sample; expected values from training/reference.csv.
        let customer = Customer {
            tenure: Some(1),
            monthly_charges: Some(29.85),
            total_charges: Some(29.85),
            senior_citizen: Some(0),
            contract: Some("Month-to-month"),
            payment_method: Some("Electronic check"),
            internet_service: Some("DSL"),
            paperless_billing: Some("Yes"),
            tech_support: Some("No"),
            online_security: Some("No"),
        };
        let features = encode(&customer);
        let expected = [
            1.0, 29.85, 29.85, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0,
        ];
        assert_eq!(features, expected.map(|v: f64| v as f32));
    }

    #[test]
    fn a_batch_with_nulls_encodes_like_missing_values() {
        let text = |values: [Option<&str>; 2]| values.map(|v| v.map(str::to_owned)).to_vec();
        let batch = cordon_guest::BatchBuilder::new()
            .nullable_i64("tenure", vec![Some(1), None])
            .nullable_f64("monthly_charges", vec![Some(29.85), None])
            .nullable_f64("total_charges", vec![None, Some(1889.5)])
            .i64("senior_citizen", vec![0, 1])
            .nullable_text("contract", text([Some("One year"), None]))
            .nullable_text("payment_method", text([None, Some("Mailed check")]))
            .nullable_text("internet_service", text([Some("DSL"), None]))
            .nullable_text("paperless_billing", text([None, Some("Yes")]))
            .nullable_text("tech_support", text([Some("Yes"), None]))
            .nullable_text("online_security", text([None, Some("No")]))
            .build()
            .unwrap();
        let rows = [
            Customer {
                tenure: Some(1),
                monthly_charges: Some(29.85),
                senior_citizen: Some(0),
                contract: Some("One year"),
                internet_service: Some("DSL"),
                tech_support: Some("Yes"),
                ..Customer::default()
            },
            Customer {
                total_charges: Some(1889.5),
                senior_citizen: Some(1),
                payment_method: Some("Mailed check"),
                paperless_billing: Some("Yes"),
                online_security: Some("No"),
                ..Customer::default()
            },
        ];
        let expected: Vec<f32> = rows.iter().flat_map(encode).collect();
        assert_eq!(encode_batch(&batch).unwrap(), expected);
    }

    #[test]
    fn blank_total_charges_and_unseen_categories_encode_as_zero() {
        let features = encode(&Customer {
            contract: Some("Three year"),
            ..Customer::default()
        });
        assert_eq!(features, [0.0; FEATURE_COUNT]);
    }
}
