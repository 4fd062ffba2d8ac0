//! A model's settings: typed knobs the manifest declares with a default (the forecaster's
//! season length and horizon), which the consumer's policy may set in `[settings]`. They reach
//! the guest through the contract (`cordon:model/settings`), and every run records the values
//! it ran with in its audit `grant` event.
//!
//! Everything here starts as the provider's or the consumer's text: types, names and bounds
//! are checked before a value can reach a model, and the strings are bounded because they are
//! printed on the consumer's terminal and written to the audit trail.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::manifest::ValueRange;
use crate::names::{Name, printable};

/// Most settings one manifest may declare.
pub const MAX_SETTINGS: usize = 64;
/// Longest description of a setting.
pub const MAX_SETTING_DESCRIPTION_BYTES: usize = 256;
/// Longest text value, and longest choice.
pub const MAX_SETTING_TEXT_BYTES: usize = 1024;
/// Most numbers in a `float64-list` value.
pub const MAX_SETTING_LIST: usize = 64;
/// Most choices of a text setting.
pub const MAX_SETTING_CHOICES: usize = 64;

/// The type of a setting, as the manifest declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettingType {
    Int64,
    Float64,
    Text,
    Boolean,
    /// A list of numbers: interval levels, quantiles.
    Float64List,
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SettingType::Int64 => "int64",
            SettingType::Float64 => "float64",
            SettingType::Text => "text",
            SettingType::Boolean => "boolean",
            SettingType::Float64List => "float64-list",
        })
    }
}

/// A setting's value, of its declared type.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum SettingValue {
    Int64(i64),
    Float64(f64),
    Text(String),
    Boolean(bool),
    Float64List(Vec<f64>),
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Int64(value) => write!(f, "{value}"),
            SettingValue::Float64(value) => write!(f, "{value}"),
            SettingValue::Text(value) => write!(f, "\"{}\"", printable(value, 64)),
            SettingValue::Boolean(value) => write!(f, "{value}"),
            SettingValue::Float64List(values) => {
                let listed: Vec<String> = values.iter().map(f64::to_string).collect();
                write!(f, "[{}]", listed.join(", "))
            }
        }
    }
}

impl SettingValue {
    /// `value` read as `ty`: an integer is a float64 too, nothing else converts.
    pub fn from_toml(value: &toml::Value, ty: SettingType) -> Result<SettingValue, String> {
        let number = |value: &toml::Value| match value {
            toml::Value::Float(x) => Some(*x),
            toml::Value::Integer(n) => Some(*n as f64),
            _ => None,
        };
        let read = match (ty, value) {
            (SettingType::Int64, toml::Value::Integer(n)) => Some(SettingValue::Int64(*n)),
            (SettingType::Float64, value) => number(value).map(SettingValue::Float64),
            (SettingType::Text, toml::Value::String(text)) => {
                Some(SettingValue::Text(text.clone()))
            }
            (SettingType::Boolean, toml::Value::Boolean(flag)) => {
                Some(SettingValue::Boolean(*flag))
            }
            (SettingType::Float64List, toml::Value::Array(items)) => items
                .iter()
                .map(number)
                .collect::<Option<Vec<f64>>>()
                .map(SettingValue::Float64List),
            _ => None,
        };
        read.ok_or_else(|| format!("expected {}, found {}", describe(ty), value.type_str()))
    }
}

fn describe(ty: SettingType) -> &'static str {
    match ty {
        SettingType::Int64 => "an integer",
        SettingType::Float64 => "a number",
        SettingType::Text => "a string",
        SettingType::Boolean => "true or false",
        SettingType::Float64List => "a list of numbers",
    }
}

/// `[settings.<name>]` of a manifest, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSetting {
    #[serde(rename = "type")]
    ty: SettingType,
    default: toml::Value,
    #[serde(default)]
    description: String,
    /// Numbers: the closed range each value must lie in.
    range: Option<ValueRange>,
    /// Text: the only values allowed.
    choices: Option<Vec<String>>,
}

/// One setting a manifest declares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SettingSpec {
    pub name: Name,
    #[serde(rename = "type")]
    pub ty: SettingType,
    pub default: SettingValue,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<ValueRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

impl SettingSpec {
    /// Checks `value` against the declared bounds (it is of the declared type already).
    pub fn check(&self, value: &SettingValue) -> Result<(), String> {
        match value {
            SettingValue::Int64(n) => self.check_number(*n as f64),
            SettingValue::Float64(x) => self.check_number(*x),
            SettingValue::Float64List(values) => {
                if values.is_empty() || values.len() > MAX_SETTING_LIST {
                    return Err(format!(
                        "a list of 1 to {MAX_SETTING_LIST} numbers is expected, found {}",
                        values.len()
                    ));
                }
                values.iter().try_for_each(|x| self.check_number(*x))
            }
            SettingValue::Text(text) => {
                if text.len() > MAX_SETTING_TEXT_BYTES {
                    return Err(format!(
                        "the text is {} bytes; at most {MAX_SETTING_TEXT_BYTES} are allowed",
                        text.len()
                    ));
                }
                match &self.choices {
                    Some(choices) if !choices.contains(text) => Err(format!(
                        "\"{}\" is not one of {}",
                        printable(text, 64),
                        choices
                            .iter()
                            .map(|c| format!("\"{}\"", printable(c, 64)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    _ => Ok(()),
                }
            }
            SettingValue::Boolean(_) => Ok(()),
        }
    }

    fn check_number(&self, value: f64) -> Result<(), String> {
        if !value.is_finite() {
            return Err(format!("{value} is not a finite number"));
        }
        match self.range {
            Some(range) if !range.contains(value) => {
                Err(format!("{value} is outside the declared range {range}"))
            }
            _ => Ok(()),
        }
    }
}

/// The manifest's `[settings]`, validated: each default of its type and within its bounds.
/// Errors are `(dotted key, message)`, for the caller to place at a line.
pub(crate) fn declared(
    raw: BTreeMap<Name, RawSetting>,
) -> Result<Vec<SettingSpec>, (String, String)> {
    if raw.len() > MAX_SETTINGS {
        return Err((
            "settings".into(),
            format!(
                "the manifest declares {} settings; at most {MAX_SETTINGS} are allowed",
                raw.len()
            ),
        ));
    }
    let mut specs = Vec::with_capacity(raw.len());
    for (name, raw) in raw {
        let at = |field: &str| format!("settings.{name}.{field}");
        if raw.description.len() > MAX_SETTING_DESCRIPTION_BYTES
            || raw.description.chars().any(char::is_control)
        {
            return Err((
                at("description"),
                format!(
                    "settings.{name}.description must be at most {MAX_SETTING_DESCRIPTION_BYTES} bytes of printable text"
                ),
            ));
        }
        let number = matches!(
            raw.ty,
            SettingType::Int64 | SettingType::Float64 | SettingType::Float64List
        );
        if let Some(range) = raw.range
            && (!number
                || !range.low().is_finite()
                || !range.high().is_finite()
                || range.low() > range.high())
        {
            return Err((
                at("range"),
                format!(
                    "settings.{name}.range must be two finite numbers, the lower first, on a number setting"
                ),
            ));
        }
        if let Some(choices) = &raw.choices
            && (raw.ty != SettingType::Text
                || choices.is_empty()
                || choices.len() > MAX_SETTING_CHOICES
                || choices.iter().any(|c| c.len() > MAX_SETTING_TEXT_BYTES))
        {
            return Err((
                at("choices"),
                format!(
                    "settings.{name}.choices must be 1 to {MAX_SETTING_CHOICES} strings, on a text setting"
                ),
            ));
        }
        let default = SettingValue::from_toml(&raw.default, raw.ty)
            .map_err(|why| (at("default"), format!("settings.{name}.default: {why}")))?;
        let spec = SettingSpec {
            name: name.clone(),
            ty: raw.ty,
            default,
            description: raw.description,
            range: raw.range,
            choices: raw.choices,
        };
        spec.check(&spec.default)
            .map_err(|why| (at("default"), format!("settings.{name}.default: {why}")))?;
        specs.push(spec);
    }
    Ok(specs)
}

/// Where a run's value of a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettingOrigin {
    /// The manifest's default.
    Default,
    /// The policy's `[settings]`.
    Policy,
}

/// One setting as a run has it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrantedSetting {
    pub name: Name,
    pub value: SettingValue,
    pub origin: SettingOrigin,
}

/// Each declared setting with the policy's value, or else its default. A policy value of a
/// setting the manifest does not declare, of another type or outside its bounds is an error
/// `(dotted key, message)`.
pub fn resolve(
    declared: &[SettingSpec],
    policy: &BTreeMap<String, toml::Value>,
) -> Result<Vec<GrantedSetting>, (String, String)> {
    if let Some(unknown) = policy.keys().find(|name| {
        !declared
            .iter()
            .any(|spec| spec.name.as_str() == name.as_str())
    }) {
        let known: Vec<&str> = declared.iter().map(|spec| spec.name.as_str()).collect();
        let known = if known.is_empty() {
            "it declares none".to_owned()
        } else {
            format!("it declares: {}", known.join(", "))
        };
        return Err((
            format!("settings.{unknown}"),
            format!(
                "[settings] sets `{}`, which the package does not declare; {known}",
                printable(unknown, 64)
            ),
        ));
    }
    declared
        .iter()
        .map(|spec| {
            let Some(value) = policy.get(spec.name.as_str()) else {
                return Ok(GrantedSetting {
                    name: spec.name.clone(),
                    value: spec.default.clone(),
                    origin: SettingOrigin::Default,
                });
            };
            let at = format!("settings.{}", spec.name);
            let value = SettingValue::from_toml(value, spec.ty)
                .and_then(|value| spec.check(&value).map(|()| value))
                .map_err(|why| {
                    (
                        at.clone(),
                        format!(
                            "[settings] {} = {}: {why} (the package declares {} {}{})",
                            spec.name,
                            printable(&value.to_string(), 64),
                            spec.ty,
                            spec.name,
                            spec.range
                                .map(|range| format!(" in {range}"))
                                .unwrap_or_default()
                        ),
                    )
                })?;
            Ok(GrantedSetting {
                name: spec.name.clone(),
                value,
                origin: SettingOrigin::Policy,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ty: SettingType, default: SettingValue, range: Option<ValueRange>) -> SettingSpec {
        SettingSpec {
            name: Name::try_from("period".to_owned()).unwrap(),
            ty,
            default,
            description: String::new(),
            range,
            choices: None,
        }
    }

    #[test]
    fn a_policy_value_replaces_the_default_and_is_checked() {
        let declared = [spec(
            SettingType::Int64,
            SettingValue::Int64(4),
            Some(ValueRange(1.0, 366.0)),
        )];
        let none = resolve(&declared, &BTreeMap::new()).unwrap();
        assert_eq!(none[0].value, SettingValue::Int64(4));
        assert_eq!(none[0].origin, SettingOrigin::Default);

        let mut policy = BTreeMap::new();
        policy.insert("period".to_owned(), toml::Value::Integer(12));
        let set = resolve(&declared, &policy).unwrap();
        assert_eq!(set[0].value, SettingValue::Int64(12));
        assert_eq!(set[0].origin, SettingOrigin::Policy);

        policy.insert("period".to_owned(), toml::Value::Integer(0));
        let (key, message) = resolve(&declared, &policy).unwrap_err();
        assert_eq!(key, "settings.period");
        assert!(
            message.contains("outside the declared range 1 to 366"),
            "{message}"
        );

        policy.insert("period".to_owned(), toml::Value::Float(12.5));
        let (_, message) = resolve(&declared, &policy).unwrap_err();
        assert!(
            message.contains("expected an integer, found float"),
            "{message}"
        );

        policy.clear();
        policy.insert("seasons".to_owned(), toml::Value::Integer(2));
        let (key, message) = resolve(&declared, &policy).unwrap_err();
        assert_eq!(key, "settings.seasons");
        assert!(message.contains("it declares: period"), "{message}");
    }

    #[test]
    fn an_integer_is_a_float_but_not_the_other_way() {
        assert_eq!(
            SettingValue::from_toml(&toml::Value::Integer(3), SettingType::Float64).unwrap(),
            SettingValue::Float64(3.0)
        );
        assert!(SettingValue::from_toml(&toml::Value::Float(3.0), SettingType::Int64).is_err());
        let list = toml::Value::Array(vec![toml::Value::Integer(80), toml::Value::Float(95.0)]);
        assert_eq!(
            SettingValue::from_toml(&list, SettingType::Float64List).unwrap(),
            SettingValue::Float64List(vec![80.0, 95.0])
        );
    }
}
