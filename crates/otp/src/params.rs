//! Range-checked parameters. Each constructor is the only way in, so a value
//! of one of these types is valid by construction.

use std::fmt;

/// A parameter outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be between {min} and {max}, got {got}")]
pub struct ParamError {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
    pub got: i64,
}

macro_rules! bounded {
    ($(#[$doc:meta])* $ty:ident($inner:ty), $name:literal, $min:expr, $max:expr, $default:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty($inner);

        impl $ty {
            /// Smallest allowed value.
            pub const MIN: $inner = $min;
            /// Largest allowed value.
            pub const MAX: $inner = $max;
            /// The TrueNAS default.
            pub const DEFAULT: $ty = $ty($default);

            /// Checks the range; the only constructor.
            pub fn new(value: i64) -> Result<Self, ParamError> {
                if (Self::MIN as i64..=Self::MAX as i64).contains(&value) {
                    // The range check above makes the narrowing exact.
                    Ok(Self(value as $inner))
                } else {
                    Err(ParamError { name: $name, min: Self::MIN as i64, max: Self::MAX as i64, got: value })
                }
            }

            /// The plain value.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::DEFAULT
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl TryFrom<i64> for $ty {
            type Error = ParamError;
            fn try_from(value: i64) -> Result<Self, ParamError> {
                Self::new(value)
            }
        }

        /// Deserialises through [`Self::new`]: a value out of range is a
        /// deserialisation error, never a value of this type.
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = <i64 as serde::Deserialize>::deserialize(d)?;
                Self::new(n).map_err(serde::de::Error::custom)
            }
        }

        /// Serialises as the plain number.
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
    };
}

bounded!(
    /// Number of digits in a code: 6 to 8.
    Digits(u8), "otp_digits", 6, 8, 6
);
bounded!(
    /// Life of one TOTP code in seconds: 5 to 3600.
    Interval(u32), "interval", 5, 3600, 30
);
bounded!(
    /// Time steps accepted before and after the current one: 0 to 10.
    Window(u8), "window", 0, 10, 0
);

impl Digits {
    /// 10^digits, the modulus of the dynamic truncation.
    pub const fn modulus(self) -> u32 {
        10u32.pow(self.0 as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced_at_both_ends() {
        assert!(Digits::new(5).is_err());
        assert_eq!(Digits::new(6).map(Digits::get), Ok(6));
        assert_eq!(Digits::new(8).map(Digits::get), Ok(8));
        assert!(Digits::new(9).is_err());
        assert!(Interval::new(4).is_err());
        assert_eq!(Interval::new(3600).map(Interval::get), Ok(3600));
        assert!(Interval::new(3601).is_err());
        assert!(Window::new(-1).is_err());
        assert!(Window::new(11).is_err());
        assert!(Window::new(i64::MAX).is_err());
        let e = Digits::new(5).unwrap_err();
        assert_eq!((e.name, e.min, e.max, e.got), ("otp_digits", 6, 8, 5));
    }

    #[test]
    fn defaults_are_truenas_defaults() {
        assert_eq!(Digits::default().get(), 6);
        assert_eq!(Interval::default().get(), 30);
        assert_eq!(Window::default().get(), 0);
    }

    #[test]
    fn deserialising_goes_through_the_constructor() {
        let de = |text: &str| serde_json::from_str::<Digits>(text);
        assert_eq!(de("7").map(Digits::get).ok(), Some(7));
        for bad in [
            "5",
            "9",
            "-1",
            "7.0",
            "\"7\"",
            "null",
            "99999999999999999999",
        ] {
            assert!(de(bad).is_err(), "{bad}");
        }
        let e = de("9").unwrap_err().to_string();
        assert!(e.contains("between 6 and 8"), "{e}");
        assert_eq!(
            serde_json::from_str::<Interval>("3600")
                .map(Interval::get)
                .ok(),
            Some(3600)
        );
        assert!(serde_json::from_str::<Window>("11").is_err());
    }
}
