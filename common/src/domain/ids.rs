//! Validated identifiers: an [`AccountNo`] and a transfer number [`TxNo`] cannot hold an
//! invalid value, so stores and handlers never re-check them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An account number: 1–32 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountNo(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub &'static str);

impl AccountNo {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok =
            !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError("account number must be 1-32 characters of letters, digits, '-' or '_'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A transfer number: a UUID (bank1 makes a v4 per transfer), kept in its hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxNo(String);

impl TxNo {
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        uuid::Uuid::parse_str(s).map(|u| Self(u.hyphenated().to_string())).map_err(|_| IdError("tx_no must be a UUID"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_newtype_impls!(AccountNo);
string_newtype_impls!(TxNo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers() {
        assert!(AccountNo::parse("1").is_ok());
        assert!(AccountNo::parse("acc_2-b").is_ok());
        assert!(AccountNo::parse("").is_err());
        assert!(AccountNo::parse("a b").is_err());
        assert!(AccountNo::parse("'; drop table").is_err());
        assert!(AccountNo::parse(&"9".repeat(33)).is_err());
    }

    #[test]
    fn tx_numbers_are_normalised_uuids() {
        let t = TxNo::new_random();
        assert_eq!(TxNo::parse(t.as_str()).unwrap(), t);
        assert!(TxNo::parse("not-a-uuid").is_err());
        let upper = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(TxNo::parse(upper).unwrap().as_str(), upper.to_lowercase());
    }
}
