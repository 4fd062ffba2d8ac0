//! Quarter labels as the data writes them: `1998Q1`.

/// A year and a quarter (1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quarter {
    pub year: i32,
    pub quarter: u8,
}

impl Quarter {
    /// Parses `YYYYQn`.
    pub fn parse(label: &str) -> Option<Quarter> {
        let (year, quarter) = label.trim().split_once(['Q', 'q'])?;
        let year: i32 = year.trim().parse().ok()?;
        let quarter: u8 = quarter.trim().parse().ok()?;
        (1..=4)
            .contains(&quarter)
            .then_some(Quarter { year, quarter })
    }

    /// The quarter `steps` after this one.
    pub fn plus(self, steps: usize) -> Quarter {
        let index = i64::from(self.year) * 4 + i64::from(self.quarter - 1) + steps as i64;
        Quarter {
            year: index.div_euclid(4) as i32,
            quarter: index.rem_euclid(4) as u8 + 1,
        }
    }
}

impl std::fmt::Display for Quarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}Q{}", self.year, self.quarter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_steps() {
        let q = Quarter::parse("2016Q4").unwrap();
        assert_eq!(q.plus(1).to_string(), "2017Q1");
        assert_eq!(q.plus(8).to_string(), "2018Q4");
        assert_eq!(
            Quarter::parse("1998Q3").unwrap().plus(0).to_string(),
            "1998Q3"
        );
        assert!(Quarter::parse("1998Q5").is_none());
        assert!(Quarter::parse("1998-03").is_none());
    }
}
