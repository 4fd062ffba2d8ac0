//! Feature encoders: how a model's input columns become a graph's feature tensor, shipped in the
//! package rather than copied into the model's code.
//!
//! The manifest declares each encoder by name and file (`[[encoder]] name = "features", file =
//! "encoders/features.toml"`); the file, usually written by `scripts/export-sklearn.py` from a
//! fitted scikit-learn `ColumnTransformer`, lists the columns in feature order with what each
//! becomes: a scaled number, a one-hot vector or an ordinal. The guest reads them through the
//! contract (`cordon:model/encoders`) and the SDK's `Encoder` turns batches into features.
//!
//! The file is the provider's, so it is hostile like the rest of the package: every count,
//! string and number is bounded and checked here, before a model or a consumer sees it. The
//! levels of a text column are also its domain: where the manifest gives a column no `levels`,
//! the encoder's become them (what the model was trained on, checked by the host before any
//! value enters the sandbox); where it does, every level the encoder knows must be among them.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::manifest::{ColumnSpec, ColumnType, ManifestError, line_of_key};
use crate::names::{Name, printable};

/// Most encoders one package may ship.
pub const MAX_ENCODERS: usize = 16;
/// Largest encoder file, and the most bytes all of a package's encoder files may have together:
/// the host keeps them in memory and copies them to every instance that asks.
pub const MAX_ENCODER_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most levels all of a package's encoders may list together.
pub const MAX_ENCODER_LEVELS: usize = 65_536;
/// Most columns one encoder may encode.
pub const MAX_ENCODED_COLUMNS: usize = 4096;
/// Most features one encoder may produce per row.
pub const MAX_FEATURES: usize = 1 << 20;
/// The only encoder file format this runtime reads.
pub const ENCODER_VERSION: u32 = 1;

/// `[[encoder]]` in the manifest: a name the model asks for and the file that defines it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EncoderDecl {
    pub name: Name,
    /// Path inside the package.
    pub file: String,
}

/// A checked encoder: its columns in feature order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EncoderSpec {
    pub name: Name,
    /// Path inside the package.
    pub file: String,
    pub columns: Vec<EncodedColumn>,
}

impl EncoderSpec {
    /// Levels its text columns list.
    pub fn levels(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match &c.encoding {
                Encoding::Number { .. } => 0,
                Encoding::OneHot { categories, .. } | Encoding::Ordinal { categories } => {
                    categories.levels.len()
                }
            })
            .sum()
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .fold(0usize, |sum, c| sum.saturating_add(c.encoding.width()))
    }
}

/// One input column's part of the feature vector.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EncodedColumn {
    pub column: Name,
    pub encoding: Encoding,
}

/// What a column becomes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "encode")]
pub enum Encoding {
    /// One feature, `(value - center) / scale` in float64; a null or NaN is `fill` first.
    Number {
        center: f64,
        scale: f64,
        fill: Option<f64>,
    },
    /// One feature per level but `drop`.
    OneHot {
        categories: Categories,
        drop: Option<usize>,
    },
    /// One feature: the level's index.
    Ordinal { categories: Categories },
}

impl Encoding {
    /// Features this column contributes per row.
    pub fn width(&self) -> usize {
        match self {
            Encoding::Number { .. } | Encoding::Ordinal { .. } => 1,
            Encoding::OneHot { categories, drop } => categories
                .levels
                .len()
                .saturating_sub(usize::from(drop.is_some())),
        }
    }

    /// `number`, `one-hot` or `ordinal`, as the file writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Encoding::Number { .. } => "number",
            Encoding::OneHot { .. } => "one-hot",
            Encoding::Ordinal { .. } => "ordinal",
        }
    }
}

/// A text column's known values, in the encoder's order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Categories {
    pub levels: Vec<String>,
    /// What a null becomes before it is encoded.
    pub fill: Option<String>,
    pub unknown: UnknownLevel,
}

/// What a value outside the levels becomes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownLevel {
    /// The batch is refused.
    Error,
    /// One-hot: all zeros.
    Ignore,
    /// Ordinal: this number (NaN allowed, as scikit-learn allows it).
    Value(f64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEncoderFile {
    encoder_version: u32,
    #[serde(default)]
    column: Vec<RawColumn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawColumn {
    name: Name,
    encode: RawKind,
    center: Option<f64>,
    scale: Option<f64>,
    levels: Option<Vec<String>>,
    drop: Option<String>,
    unknown: Option<RawUnknown>,
    unknown_value: Option<f64>,
    fill: Option<toml::Value>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawKind {
    Number,
    OneHot,
    Ordinal,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawUnknown {
    Error,
    Ignore,
    Value,
}

/// Parses and checks one encoder file against the manifest's input columns, and feeds its
/// levels into their domains. `path` only names the file in errors.
///
/// `declared` names the columns whose levels the manifest itself declares: an encoder's levels
/// must lie inside those; other columns take the union of their encoders' levels.
pub fn resolve(
    decl: &EncoderDecl,
    text: &str,
    path: &Path,
    columns: &mut [ColumnSpec],
    declared: &BTreeSet<Name>,
    input_key: &str,
) -> Result<EncoderSpec, ManifestError> {
    let raw: RawEncoderFile = toml::from_str(text).map_err(|error| ManifestError::Parse {
        path: path.to_owned(),
        error: Box::new(error),
    })?;
    let invalid_at = |key: &str, message: String| ManifestError::Invalid {
        path: path.to_owned(),
        line: line_of_key(text, key),
        message,
    };
    if raw.encoder_version != ENCODER_VERSION {
        return Err(invalid_at(
            "encoder-version",
            format!(
                "encoder-version {} is not supported; this runtime reads version {ENCODER_VERSION}",
                raw.encoder_version
            ),
        ));
    }
    if raw.column.is_empty() {
        return Err(invalid_at(
            "encoder-version",
            format!(
                "encoder `{}` encodes no [[column]]; an encoder needs at least one",
                decl.name
            ),
        ));
    }
    if raw.column.len() > MAX_ENCODED_COLUMNS {
        return Err(invalid_at(
            "column",
            format!(
                "encoder `{}` encodes {} columns; at most {MAX_ENCODED_COLUMNS} are allowed",
                decl.name,
                raw.column.len()
            ),
        ));
    }
    let mut encoded = Vec::with_capacity(raw.column.len());
    let mut width = 0usize;
    for (index, column) in raw.column.into_iter().enumerate() {
        let key = format!("column.{index}");
        let encoding = encoding(&column, columns, declared, input_key)
            .map_err(|(field, message)| invalid_at(&format!("{key}.{field}"), message))?;
        width = width.saturating_add(encoding.width());
        if width > MAX_FEATURES {
            return Err(invalid_at(
                &key,
                format!(
                    "encoder `{}` makes more than {MAX_FEATURES} features per row",
                    decl.name
                ),
            ));
        }
        encoded.push(EncodedColumn {
            column: column.name,
            encoding,
        });
    }
    Ok(EncoderSpec {
        name: decl.name.clone(),
        file: decl.file.clone(),
        columns: encoded,
    })
}

/// One column's encoding, checked against its declaration; on failure the field at fault and
/// the message.
fn encoding(
    raw: &RawColumn,
    columns: &mut [ColumnSpec],
    declared: &BTreeSet<Name>,
    input_key: &str,
) -> Result<Encoding, (&'static str, String)> {
    let name = &raw.name;
    let Some(column) = columns.iter_mut().find(|c| c.name == *name) else {
        return Err((
            "name",
            format!("column `{name}` is not among the manifest's {input_key}"),
        ));
    };
    let unexpected = |field: &'static str, present: bool, kind: &str| {
        if present {
            Err((
                field,
                format!("column `{name}`: `{field}` does not apply to a {kind} encoding"),
            ))
        } else {
            Ok(())
        }
    };
    match raw.encode {
        RawKind::Number => {
            if !matches!(
                column.ty,
                ColumnType::Int64 | ColumnType::Float64 | ColumnType::Float32 | ColumnType::Boolean
            ) {
                return Err((
                    "encode",
                    format!(
                        "column `{name}` is {}; a number encoding takes int64, float64, float32 or boolean",
                        column.ty
                    ),
                ));
            }
            unexpected("levels", raw.levels.is_some(), "number")?;
            unexpected("drop", raw.drop.is_some(), "number")?;
            unexpected("unknown", raw.unknown.is_some(), "number")?;
            unexpected("unknown-value", raw.unknown_value.is_some(), "number")?;
            let center = raw.center.unwrap_or(0.0);
            let scale = raw.scale.unwrap_or(1.0);
            if !center.is_finite() {
                return Err(("center", format!("column `{name}`: center must be finite")));
            }
            if !scale.is_finite() || scale == 0.0 {
                return Err((
                    "scale",
                    format!("column `{name}`: scale must be finite and not 0"),
                ));
            }
            let fill = match &raw.fill {
                None => None,
                Some(value) => match value {
                    toml::Value::Float(x) if x.is_finite() => Some(*x),
                    toml::Value::Integer(n) => Some(*n as f64),
                    _ => {
                        return Err((
                            "fill",
                            format!("column `{name}`: fill must be a finite number"),
                        ));
                    }
                },
            };
            Ok(Encoding::Number {
                center,
                scale,
                fill,
            })
        }
        RawKind::OneHot | RawKind::Ordinal => {
            let kind = if raw.encode == RawKind::OneHot {
                "one-hot"
            } else {
                "ordinal"
            };
            if column.ty != ColumnType::Text {
                return Err((
                    "encode",
                    format!(
                        "column `{name}` is {}; a {kind} encoding takes text",
                        column.ty
                    ),
                ));
            }
            unexpected("center", raw.center.is_some(), kind)?;
            unexpected("scale", raw.scale.is_some(), kind)?;
            let levels = raw.levels.clone().ok_or_else(|| {
                (
                    "encode",
                    format!("column `{name}`: a {kind} encoding needs its `levels`"),
                )
            })?;
            check_levels(name, &levels)?;
            let fill = match &raw.fill {
                None => None,
                Some(toml::Value::String(text))
                    if text.len() <= crate::manifest::MAX_LEVEL_BYTES =>
                {
                    Some(text.clone())
                }
                Some(_) => {
                    return Err((
                        "fill",
                        format!(
                            "column `{name}`: fill must be a text of at most {} bytes",
                            crate::manifest::MAX_LEVEL_BYTES
                        ),
                    ));
                }
            };
            let unknown = match (raw.unknown.unwrap_or(RawUnknown::Error), raw.encode) {
                (RawUnknown::Error, _) => {
                    unexpected("unknown-value", raw.unknown_value.is_some(), "refusing")?;
                    UnknownLevel::Error
                }
                (RawUnknown::Ignore, RawKind::OneHot) => {
                    unexpected("unknown-value", raw.unknown_value.is_some(), "one-hot")?;
                    UnknownLevel::Ignore
                }
                (RawUnknown::Value, RawKind::Ordinal) => {
                    let value = raw.unknown_value.ok_or_else(|| {
                        (
                            "unknown",
                            format!("column `{name}`: unknown = \"value\" needs `unknown-value`"),
                        )
                    })?;
                    if value.is_infinite() {
                        return Err((
                            "unknown-value",
                            format!("column `{name}`: unknown-value must be a number or nan"),
                        ));
                    }
                    UnknownLevel::Value(value)
                }
                _ => {
                    return Err((
                        "unknown",
                        format!(
                            "column `{name}`: a {kind} encoding takes unknown = {}",
                            if raw.encode == RawKind::OneHot {
                                "\"error\" or \"ignore\""
                            } else {
                                "\"error\" or \"value\" (with unknown-value)"
                            }
                        ),
                    ));
                }
            };
            let drop = match &raw.drop {
                None => None,
                Some(dropped) if raw.encode == RawKind::OneHot => {
                    Some(levels.iter().position(|l| l == dropped).ok_or_else(|| {
                        (
                            "drop",
                            format!(
                                "column `{name}`: drop `{}` is not one of its levels",
                                printable(dropped, 64)
                            ),
                        )
                    })?)
                }
                Some(_) => return Err(("drop", format!("column `{name}`: drop is for one-hot"))),
            };
            feed_domain(column, declared.contains(name), &levels)?;
            let categories = Categories {
                levels,
                fill,
                unknown,
            };
            Ok(if raw.encode == RawKind::OneHot {
                Encoding::OneHot { categories, drop }
            } else {
                Encoding::Ordinal { categories }
            })
        }
    }
}

fn check_levels(name: &Name, levels: &[String]) -> Result<(), (&'static str, String)> {
    use crate::manifest::{MAX_LEVEL_BYTES, MAX_LEVELS};
    if levels.is_empty() || levels.len() > MAX_LEVELS {
        return Err((
            "levels",
            format!(
                "column `{name}` lists {} levels; between 1 and {MAX_LEVELS} are allowed",
                levels.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for level in levels {
        if level.len() > MAX_LEVEL_BYTES {
            return Err((
                "levels",
                format!(
                    "column `{name}`: level `{}` is {} bytes; at most {MAX_LEVEL_BYTES} are allowed",
                    printable(level, 64),
                    level.len()
                ),
            ));
        }
        if !seen.insert(level.as_str()) {
            return Err((
                "levels",
                format!(
                    "column `{name}`: level `{}` is listed twice",
                    printable(level, 64)
                ),
            ));
        }
    }
    Ok(())
}

/// The encoder's levels are the column's domain: where the manifest declares the column's
/// levels, every level the encoder knows must be among them; where it does not, the column
/// takes the levels of every encoder that reads it.
fn feed_domain(
    column: &mut ColumnSpec,
    declared: bool,
    levels: &[String],
) -> Result<(), (&'static str, String)> {
    let known: std::collections::HashSet<&str> =
        column.levels.iter().flatten().map(String::as_str).collect();
    let outside: Vec<&String> = levels
        .iter()
        .filter(|l| !known.contains(l.as_str()))
        .collect();
    if declared {
        return match outside.first() {
            None => Ok(()),
            Some(outside) => Err((
                "levels",
                format!(
                    "column `{}`: the encoder knows level `{}`, which the manifest's levels for the column do not list; re-export the encoder or leave the column's levels out of the manifest (the encoder's become them)",
                    column.name,
                    printable(outside, 64)
                ),
            )),
        };
    }
    let outside: Vec<String> = outside.into_iter().cloned().collect();
    let domain = column.levels.get_or_insert_with(Vec::new);
    domain.extend(outside);
    if domain.len() > crate::manifest::MAX_LEVELS {
        return Err((
            "levels",
            format!(
                "column `{}`: its encoders know {} levels together; at most {} are allowed",
                column.name,
                domain.len(),
                crate::manifest::MAX_LEVELS
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::try_from(text.to_owned()).unwrap()
    }

    fn columns() -> Vec<ColumnSpec> {
        vec![
            ColumnSpec::new(name("age"), ColumnType::Int64),
            ColumnSpec::new(name("purpose"), ColumnType::Text),
        ]
    }

    fn decl() -> EncoderDecl {
        EncoderDecl {
            name: name("features"),
            file: "encoders/features.toml".into(),
        }
    }

    fn resolved(text: &str) -> Result<(EncoderSpec, Vec<ColumnSpec>), String> {
        let mut columns = columns();
        resolve(
            &decl(),
            text,
            Path::new("encoders/features.toml"),
            &mut columns,
            &BTreeSet::new(),
            "input.rows.columns",
        )
        .map(|spec| (spec, columns))
        .map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
encoder-version = 1
[[column]]
name = "age"
encode = "number"
center = 40.0
scale = 10.0
fill = 38
[[column]]
name = "purpose"
encode = "one-hot"
levels = ["car", "home", "study"]
drop = "car"
unknown = "ignore"
fill = "home"
"#;

    #[test]
    fn a_good_encoder_resolves_and_feeds_the_domain() {
        let (spec, columns) = resolved(GOOD).unwrap();
        assert_eq!(spec.width(), 3);
        assert_eq!(
            spec.columns[0].encoding,
            Encoding::Number {
                center: 40.0,
                scale: 10.0,
                fill: Some(38.0)
            }
        );
        assert_eq!(
            columns[1].levels.as_deref(),
            Some(&["car".to_owned(), "home".into(), "study".into()][..])
        );
    }

    #[test]
    fn hostile_or_broken_files_are_refused_by_line() {
        let cases = [
            (GOOD.replace("\"age\"", "\"salary\""), ":4:", "not among"),
            (GOOD.replace("scale = 10.0", "scale = 0.0"), ":7:", "scale"),
            (
                GOOD.replace("center = 40.0", "center = nan"),
                ":6:",
                "finite",
            ),
            (
                GOOD.replace("drop = \"car\"", "drop = \"boat\""),
                ":13:",
                "boat",
            ),
            (
                GOOD.replace("\"home\", \"study\"", "\"home\", \"home\""),
                ":12:",
                "twice",
            ),
            (
                GOOD.replace("unknown = \"ignore\"", "unknown = \"value\""),
                ":14:",
                "unknown",
            ),
            (
                GOOD.replace("encoder-version = 1", "encoder-version = 9"),
                ":2:",
                "9",
            ),
            (
                GOOD.replace("encode = \"number\"", "encode = \"one-hot\""),
                ":5:",
                "text",
            ),
            (GOOD.replace("fill = 38", "fill = \"x\""), ":8:", "fill"),
            (GOOD.replace("fill = 38", "colour = 1"), "", "unknown field"),
        ];
        for (text, line, needle) in cases {
            let error = resolved(&text).unwrap_err();
            assert!(
                error.contains(&format!("features.toml{line}")) && error.contains(needle),
                "{needle}: {error}"
            );
        }
    }

    #[test]
    fn levels_outside_the_manifest_domain_are_refused() {
        let mut columns = columns();
        columns[1].levels = Some(vec!["car".into(), "home".into()]);
        let declared = BTreeSet::from([name("purpose")]);
        let error = resolve(
            &decl(),
            GOOD,
            Path::new("f.toml"),
            &mut columns,
            &declared,
            "input.rows.columns",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`study`"), "{error}");
        // Inside it is fine: the manifest may know more levels than the encoder.
        columns[1].levels = Some(vec![
            "car".into(),
            "home".into(),
            "study".into(),
            "x".into(),
        ]);
        resolve(
            &decl(),
            GOOD,
            Path::new("f.toml"),
            &mut columns,
            &declared,
            "input.rows.columns",
        )
        .unwrap();
        // Levels the manifest did not declare are the union of the encoders'.
        let mut columns = self::columns();
        columns[1].levels = Some(vec!["boat".into(), "car".into()]);
        resolve(
            &decl(),
            GOOD,
            Path::new("f.toml"),
            &mut columns,
            &BTreeSet::new(),
            "input.rows.columns",
        )
        .unwrap();
        assert_eq!(
            columns[1].levels.as_deref(),
            Some(
                &[
                    "boat".to_owned(),
                    "car".into(),
                    "home".into(),
                    "study".into()
                ][..]
            )
        );
    }
}
