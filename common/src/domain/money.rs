//! Exact money: an [`Amount`] is a positive number of minor units (cents), parsed from and
//! shown as a decimal string with at most two decimals. No floats anywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest amount accepted: 10^15 minor units (10 trillion in major units), far below
/// `i64::MAX`, so sums of many amounts cannot overflow either.
pub const MAX_MINOR_UNITS: i64 = 1_000_000_000_000_000;

/// Largest balance an account may hold: the same bound as one amount, so any balance can be
/// moved in one transfer and Σ of both banks' balances stays far below `i64::MAX`. A credit
/// that would pass it is refused (a permanent failure at the receiver: the money goes back).
/// The schemas hold the same bound as a CHECK constraint.
pub const MAX_BALANCE_MINOR: i64 = MAX_MINOR_UNITS;

/// A strictly positive amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why a string is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a decimal string like \"100.00\"")]
    NotANumber,
    #[error("amount must have at most 2 decimal places")]
    TooManyDecimals,
    #[error("amount must be greater than 0")]
    NotPositive,
    #[error("amount is too large")]
    TooLarge,
}

impl Amount {
    /// From minor units; `None` unless `0 < minor <= MAX_MINOR_UNITS`.
    pub fn from_minor(minor: i64) -> Option<Self> {
        (minor > 0 && minor <= MAX_MINOR_UNITS).then_some(Self(minor))
    }

    pub fn minor(self) -> i64 {
        self.0
    }

    /// Parses `"12"`, `"12.3"`, `"12.34"`; rejects signs, exponents, blanks, > 2 decimals.
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        let minor = parse_minor(s)?;
        if minor == 0 {
            return Err(AmountError::NotPositive);
        }
        Self::from_minor(minor).ok_or(AmountError::TooLarge)
    }
}

/// Parses a non-negative decimal string into minor units (a balance or a threshold may be 0).
pub fn parse_minor(s: &str) -> Result<i64, AmountError> {
    if s.starts_with('-') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(AmountError::NotPositive);
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    if s.contains('.') && frac.is_empty() {
        return Err(AmountError::NotANumber);
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    if frac.len() > 2 {
        return Err(AmountError::TooManyDecimals);
    }
    let int_digits = int.trim_start_matches('0');
    if int_digits.len() > 15 {
        return Err(AmountError::TooLarge);
    }
    let whole: i64 = if int_digits.is_empty() { 0 } else { int_digits.parse().map_err(|_| AmountError::TooLarge)? };
    let mut cents: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        cents += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    let minor = whole.checked_mul(100).and_then(|w| w.checked_add(cents)).ok_or(AmountError::TooLarge)?;
    if minor > MAX_MINOR_UNITS {
        return Err(AmountError::TooLarge);
    }
    Ok(minor)
}

/// Formats minor units as `"123.45"` (a leading `-` for negatives).
pub fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_minor(self.0))
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A fault threshold: "fail when amount >= this". Zero is allowed (fail everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(pub i64);

impl Threshold {
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        parse_minor(s.trim()).map(Self)
    }

    /// For clap's `value_parser`: the error as text.
    pub fn parse_arg(s: &str) -> Result<Self, String> {
        Self::parse(s).map_err(|e| e.to_string())
    }

    pub fn hits(self, amount: Amount) -> bool {
        amount.minor() >= self.0
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_minor(self.0))
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Threshold::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_amounts_exactly() {
        assert_eq!(Amount::parse("100").unwrap().minor(), 10_000);
        assert_eq!(Amount::parse("100.5").unwrap().minor(), 10_050);
        assert_eq!(Amount::parse("0.01").unwrap().minor(), 1);
        assert_eq!(Amount::parse("007.10").unwrap().minor(), 710);
        assert_eq!(Amount::parse("0.29").unwrap().to_string(), "0.29");
    }

    #[test]
    fn rejects_bad_amounts_with_a_reason() {
        assert_eq!(Amount::parse("0"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("0.00"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("-1"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("1.001"), Err(AmountError::TooManyDecimals));
        for bad in ["", ".5", "1.", "1e3", "abc", " 1", "1,00", "+1", "NaN", "1.2.3"] {
            assert_eq!(Amount::parse(bad), Err(AmountError::NotANumber), "{bad:?}");
        }
        assert_eq!(Amount::parse("99999999999999999999"), Err(AmountError::TooLarge));
        assert_eq!(Amount::parse("10000000000000.01"), Err(AmountError::TooLarge));
    }

    #[test]
    fn formats_negative_and_small_values() {
        assert_eq!(format_minor(-5), "-0.05");
        assert_eq!(format_minor(100_000), "1000.00");
    }

    #[test]
    fn threshold_hits_at_and_above() {
        let t = Threshold::parse("50.00").unwrap();
        assert!(t.hits(Amount::parse("50").unwrap()));
        assert!(t.hits(Amount::parse("60").unwrap()));
        assert!(!t.hits(Amount::parse("49.99").unwrap()));
    }
}
