//! `cordon:model/settings` (contracts 0.3.0 and 0.4.0): the manifest's settings with the values this run
//! gives them. The values were checked against the manifest's types and bounds when the grant
//! was made; the guest gets a copy of the same list on every call.

use std::sync::Arc;

use cordon_config::settings::{GrantedSetting, SettingValue};
use cordon_contract::bindings::cordon::model::settings::{Host, Setting, SettingValue as Wit};

/// The settings one instance reads.
#[derive(Debug, Clone, Default)]
pub struct GuestSettings(Arc<Vec<Setting>>);

impl GuestSettings {
    pub fn new(granted: &[GrantedSetting]) -> GuestSettings {
        GuestSettings(Arc::new(
            granted
                .iter()
                .map(|setting| Setting {
                    name: setting.name.to_string(),
                    value: match &setting.value {
                        SettingValue::Int64(n) => Wit::Int64(*n),
                        SettingValue::Float64(x) => Wit::Float64(*x),
                        SettingValue::Text(text) => Wit::Text(text.clone()),
                        SettingValue::Boolean(flag) => Wit::Boolean(*flag),
                        SettingValue::Float64List(values) => Wit::Float64List(values.clone()),
                    },
                })
                .collect(),
        ))
    }
}

impl Host for GuestSettings {
    fn all(&mut self) -> wasmtime::Result<Vec<Setting>> {
        Ok(self.0.as_ref().clone())
    }
}

/// The same settings for a model of contract 0.3.0, whose interface has its own name and
/// types.
impl cordon_contract::bindings_0_3::cordon::model::settings::Host for GuestSettings {
    fn all(
        &mut self,
    ) -> wasmtime::Result<Vec<cordon_contract::bindings_0_3::cordon::model::settings::Setting>>
    {
        use cordon_contract::bindings_0_3::cordon::model::settings::{
            Setting as Old, SettingValue as OldValue,
        };
        Ok(self
            .0
            .iter()
            .map(|setting| Old {
                name: setting.name.clone(),
                value: match &setting.value {
                    Wit::Int64(n) => OldValue::Int64(*n),
                    Wit::Float64(x) => OldValue::Float64(*x),
                    Wit::Text(text) => OldValue::Text(text.clone()),
                    Wit::Boolean(flag) => OldValue::Boolean(*flag),
                    Wit::Float64List(values) => OldValue::Float64List(values.clone()),
                },
            })
            .collect())
    }
}
