//! Validated names for inputs, outputs, columns, graphs and publishers.

use std::fmt;

/// Longest name accepted, so that names stay readable in errors and audit lines.
pub const MAX_NAME_LEN: usize = 64;

/// An identifier: starts with a letter or `_`, then letters, digits, `_` or `-`.
///
/// Names reach error messages, audit events and output headers; keeping them to this alphabet
/// means none of those can be forged with control characters or quoting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let mut chars = value.chars();
        let starts_well = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !starts_well
            || value.len() > MAX_NAME_LEN
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{}` is not a valid name: use a letter or `_` first, then letters, digits, `_` or `-`, at most {MAX_NAME_LEN} characters",
                printable(&value, MAX_NAME_LEN + 16)
            ));
        }
        Ok(Name(value))
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Name::try_from(value).map_err(serde::de::Error::custom)
    }
}

/// Text from a package, a guest or a graph made safe for a terminal and a log line: control
/// characters and bidirectional overrides (which reorder what a terminal shows) escaped, cut to
/// at most `max_bytes` bytes plus an ellipsis. Every string a provider wrote is printed through
/// this: a description holding `ESC[1A` could otherwise overwrite the line above it, say the
/// "signature verified" line of the permissions screen.
pub fn printable(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        let bidi = matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            piece.extend(c.escape_default());
        } else {
            piece.push(c);
        }
        if out.len() + piece.len() > max_bytes {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_escapes_terminal_controls_and_bidi() {
        let shown = printable("ok\u{1b}[1A\u{202e}evil\nline", 100);
        assert_eq!(shown, "ok\\u{1b}[1A\\u{202e}evil\\nline");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(
            printable(&"x".repeat(50), 10),
            format!("{}…", "x".repeat(10))
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(Name::try_from("monthly_charges".to_string()).is_ok());
        assert!(Name::try_from("telco-churn".to_string()).is_ok());
        assert!(Name::try_from("1x".to_string()).is_err());
        assert!(Name::try_from("a b".to_string()).is_err());
        assert!(Name::try_from("x\u{1b}[31m".to_string()).is_err());
        assert!(Name::try_from(String::new()).is_err());
    }
}
