//! `cordon:model/encoders` (contract 0.4.0): the package's feature encoders, as the manifest's
//! `[[encoder]]` files define them and `cordon_config::encoders` checked them. The guest gets a
//! copy of the same list on every call; the guest SDK reads it once per instance.

use std::sync::Arc;

use cordon_config::encoders::{
    Categories as Spec, EncoderSpec, Encoding as SpecEncoding, UnknownLevel,
};
use cordon_contract::bindings::cordon::model::encoders::{
    Categories, EncodedColumn, Encoder, Encoding, Host, NumberEncoding, OneHotEncoding,
    UnknownLevel as Unknown,
};

/// The encoders one instance reads.
#[derive(Debug, Clone, Default)]
pub struct GuestEncoders(Arc<Vec<Encoder>>);

impl GuestEncoders {
    pub fn new(encoders: &[EncoderSpec]) -> GuestEncoders {
        GuestEncoders(Arc::new(encoders.iter().map(encoder).collect()))
    }
}

fn encoder(spec: &EncoderSpec) -> Encoder {
    Encoder {
        name: spec.name.to_string(),
        columns: spec
            .columns
            .iter()
            .map(|column| EncodedColumn {
                column: column.column.to_string(),
                encoding: match &column.encoding {
                    SpecEncoding::Number {
                        center,
                        scale,
                        fill,
                    } => Encoding::Number(NumberEncoding {
                        center: *center,
                        scale: *scale,
                        fill: *fill,
                    }),
                    SpecEncoding::OneHot { categories, drop } => {
                        Encoding::OneHot(OneHotEncoding {
                            categories: self::categories(categories),
                            // At most MAX_LEVELS, so it fits.
                            drop: drop.and_then(|index| u32::try_from(index).ok()),
                        })
                    }
                    SpecEncoding::Ordinal { categories } => {
                        Encoding::Ordinal(self::categories(categories))
                    }
                },
            })
            .collect(),
    }
}

fn categories(spec: &Spec) -> Categories {
    Categories {
        levels: spec.levels.clone(),
        fill: spec.fill.clone(),
        unknown: match spec.unknown {
            UnknownLevel::Error => Unknown::Error,
            UnknownLevel::Ignore => Unknown::Ignore,
            UnknownLevel::Value(value) => Unknown::Value(value),
        },
    }
}

impl Host for GuestEncoders {
    fn all(&mut self) -> wasmtime::Result<Vec<Encoder>> {
        Ok(self.0.as_ref().clone())
    }
}
