//! The model's settings: the knobs its manifest declares under `[settings.<name>]`, each with
//! a type and a default, which the consumer's policy may set in its `[settings]`.
//!
//! The host has checked every value against the manifest's type and bounds before the model
//! runs, and gives the same values for the whole run. Read them with [`Settings::from_host`]
//! (once: they do not change), or build them with [`Settings::new`] in a native unit test.
//!
//! ```
//! use cordon_guest::settings::{Settings, SettingValue};
//!
//! let settings = Settings::new(vec![("period".into(), SettingValue::Int64(12))]);
//! assert_eq!(settings.int64("period").unwrap(), 12);
//! assert!(settings.int64("horizon").is_err());
//! ```

use crate::ModelError;

/// A setting's value, of the type the manifest declares for it.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Int64(i64),
    Float64(f64),
    Text(String),
    Boolean(bool),
    Float64List(Vec<f64>),
}

/// Every setting the manifest declares, with this run's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    values: Vec<(String, SettingValue)>,
}

impl Settings {
    /// Settings from name/value pairs: for native unit tests of a model's logic.
    pub fn new(values: Vec<(String, SettingValue)>) -> Settings {
        Settings { values }
    }

    /// The values the host gives this run (`cordon:model/settings`). Only inside Cordon: on a
    /// native target there is no host to ask.
    pub fn from_host() -> Settings {
        use crate::bindings::cordon::model::settings::{SettingValue as Wit, all};
        Settings {
            values: all()
                .into_iter()
                .map(|setting| {
                    let value = match setting.value {
                        Wit::Int64(n) => SettingValue::Int64(n),
                        Wit::Float64(x) => SettingValue::Float64(x),
                        Wit::Text(text) => SettingValue::Text(text),
                        Wit::Boolean(flag) => SettingValue::Boolean(flag),
                        Wit::Float64List(values) => SettingValue::Float64List(values),
                    };
                    (setting.name, value)
                })
                .collect(),
        }
    }

    /// The value of `name`, if the manifest declares it.
    pub fn get(&self, name: &str) -> Option<&SettingValue> {
        self.values
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value)
    }

    pub fn int64(&self, name: &str) -> Result<i64, ModelError> {
        match self.get(name) {
            Some(SettingValue::Int64(n)) => Ok(*n),
            other => Err(mismatch(name, "int64", other)),
        }
    }

    pub fn float64(&self, name: &str) -> Result<f64, ModelError> {
        match self.get(name) {
            Some(SettingValue::Float64(x)) => Ok(*x),
            other => Err(mismatch(name, "float64", other)),
        }
    }

    pub fn text(&self, name: &str) -> Result<&str, ModelError> {
        match self.get(name) {
            Some(SettingValue::Text(text)) => Ok(text),
            other => Err(mismatch(name, "text", other)),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<bool, ModelError> {
        match self.get(name) {
            Some(SettingValue::Boolean(flag)) => Ok(*flag),
            other => Err(mismatch(name, "boolean", other)),
        }
    }

    pub fn float64_list(&self, name: &str) -> Result<&[f64], ModelError> {
        match self.get(name) {
            Some(SettingValue::Float64List(values)) => Ok(values),
            other => Err(mismatch(name, "float64-list", other)),
        }
    }
}

/// A setting the model reads as another type than the manifest declares, or one it does not
/// declare: the model's own mistake, named.
fn mismatch(name: &str, wanted: &str, found: Option<&SettingValue>) -> ModelError {
    ModelError::Internal(match found {
        None => format!("setting `{name}` is not declared in the manifest's [settings]"),
        Some(value) => format!("setting `{name}` is read as {wanted}, but it is {value:?}"),
    })
}
