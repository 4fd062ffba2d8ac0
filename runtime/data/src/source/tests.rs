use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::compute::nullif;

use super::*;
use datafusion::arrow::array::StringArray;

#[test]
fn numbers_and_flags_drop_what_a_null_slot_still_holds() {
    let hide = BooleanArray::from(vec![false, true, false]);
    let salaries: ArrayRef = Arc::new(Float64Array::from(vec![41_000.0, 97_500.0, 52_000.0]));
    let hidden = nullif(&salaries, &hide).unwrap();
    assert!(hidden.is_null(1));
    assert_eq!(
        hidden.as_primitive::<Float64Type>().values()[1],
        97_500.0,
        "the kernel kept the value, which is what this test is about"
    );
    assert_eq!(
        primitive_values::<Float64Type>(&hidden),
        [41_000.0, 0.0, 52_000.0]
    );

    let ages: ArrayRef = Arc::new(Int64Array::from(vec![36, 71, 29]));
    let hidden = nullif(&ages, &hide).unwrap();
    assert_eq!(primitive_values::<Int64Type>(&hidden), [36, 0, 29]);
    // No nulls: the values as they are.
    assert_eq!(primitive_values::<Int64Type>(&ages), [36, 71, 29]);

    let churned: ArrayRef = Arc::new(BooleanArray::from(vec![true, true, false]));
    let hidden = nullif(&churned, &hide).unwrap();
    assert!(hidden.as_boolean().value(1), "the kernel kept the flag");
    assert_eq!(flag_values(&hidden), [true, false, false]);
}

#[test]
fn text_keeps_arrows_layout_and_drops_what_a_null_slot_still_holds() {
    let names = StringArray::from(vec!["Ada", "secret", "Grace"]);
    let text = text_values(&names).unwrap();
    assert_eq!(text.iter().collect::<Vec<_>>(), ["Ada", "secret", "Grace"]);

    // nullif marks row 1 null but keeps its bytes in the array's buffer.
    let hidden = nullif(&names, &BooleanArray::from(vec![false, true, false])).unwrap();
    let hidden = hidden.as_string::<i32>();
    assert!(hidden.is_null(1));
    assert!(
        hidden.value_data().windows(6).any(|w| w == b"secret"),
        "the kernel kept the bytes, which is what this test is about"
    );
    let text = text_values(hidden).unwrap();
    assert_eq!(text.iter().collect::<Vec<_>>(), ["Ada", "", "Grace"]);
    assert_eq!(text.byte_len(), "AdaGrace".len());

    // A slice of a larger array starts at a non-zero offset.
    let sliced = names.slice(1, 2);
    let text = text_values(&sliced).unwrap();
    assert_eq!(text.iter().collect::<Vec<_>>(), ["secret", "Grace"]);
}
