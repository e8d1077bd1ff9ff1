//! Google Authenticator Key URIs:
//! `otpauth://TYPE/ISSUER:ACCOUNT?secret=...&issuer=...&digits=..&period=..`.
//!
//! Building follows TrueNAS's rules: label parts and the issuer are
//! percent-encoded per RFC 3986 (space is `%20`, `@` is `%40`), neither part
//! may contain a `:`, `digits` and `period` are always written, `algorithm`
//! only when it is not SHA-1. Parsing accepts what other tools write
//! (lower-case secrets, padding, `+` for space in the query, missing optional
//! parameters) and names the first thing wrong.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::hotp::Algorithm;
use crate::params::{Digits, Interval, ParamError};
use crate::secret::{Secret, SecretError};

/// RFC 3986 unreserved characters stay as they are; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// TOTP or HOTP (with its counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    Totp,
    Hotp { counter: u64 },
}

/// A parsed or to-be-built Key URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    pub kind: OtpKind,
    /// The issuer; when present it is both the label prefix and the parameter.
    pub issuer: Option<String>,
    pub account: String,
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub digits: Digits,
    /// TOTP period; ignored for HOTP.
    pub period: Interval,
}

/// What is wrong with a Key URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not an otpauth URI (it must start with otpauth://)")]
    Scheme,
    #[error("unknown OTP type {0:?} (expected totp or hotp)")]
    Type(String),
    #[error("the label (issuer:account) is missing")]
    MissingLabel,
    #[error("{part} contains ':', which the label uses as its separator")]
    Colon { part: &'static str },
    #[error("{0} is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    #[error("the secret parameter is missing")]
    MissingSecret,
    #[error("the secret parameter is invalid: {0}")]
    Secret(#[from] SecretError),
    #[error("unsupported algorithm {0:?} (expected SHA1, SHA256 or SHA512)")]
    Algorithm(String),
    #[error("{name} is not a number: {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("{0}")]
    Range(#[from] ParamError),
    #[error("hotp URIs need a counter parameter")]
    MissingCounter,
    #[error("the issuer parameter {param:?} differs from the label's issuer {label:?}")]
    IssuerMismatch { label: String, param: String },
    #[error("parameter {0} appears twice")]
    Duplicate(String),
}

impl KeyUri {
    /// The URI text. Fails when issuer or account contains `:`, or when the
    /// account is empty or only white space (`parse` would refuse the result).
    pub fn build(&self) -> Result<String, UriError> {
        if self.account.trim().is_empty() {
            return Err(UriError::MissingLabel);
        }
        if self.account.contains(':') {
            return Err(UriError::Colon { part: "account" });
        }
        let kind = match self.kind {
            OtpKind::Totp => "totp",
            OtpKind::Hotp { .. } => "hotp",
        };
        let mut out = format!("otpauth://{kind}/");
        let issuer = match &self.issuer {
            Some(i) if i.contains(':') => return Err(UriError::Colon { part: "issuer" }),
            Some(i) => {
                let enc = utf8_percent_encode(i, COMPONENT).to_string();
                out.push_str(&enc);
                out.push(':');
                Some(enc)
            }
            None => None,
        };
        out.extend(utf8_percent_encode(&self.account, COMPONENT));
        out.push_str("?secret=");
        out.push_str(&self.secret.to_base32());
        if let Some(enc) = issuer {
            let _ = write!(out, "&issuer={enc}");
        }
        if self.algorithm != Algorithm::Sha1 {
            let _ = write!(out, "&algorithm={}", self.algorithm.as_str());
        }
        let _ = write!(out, "&digits={}", self.digits);
        match self.kind {
            OtpKind::Totp => {
                let _ = write!(out, "&period={}", self.period);
            }
            OtpKind::Hotp { counter } => {
                let _ = write!(out, "&counter={counter}");
            }
        }
        Ok(out)
    }

    /// Parses a Key URI, naming the first problem found.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let rest = strip_prefix_ignore_case(text.trim(), "otpauth://").ok_or(UriError::Scheme)?;
        let (kind_text, rest) = rest.split_once('/').ok_or(UriError::MissingLabel)?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let label = decode(label, false).map_err(|()| UriError::Encoding("label"))?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_owned()), a.trim_start().to_owned()),
            None => (None, label.clone()),
        };
        if account.trim().is_empty() {
            return Err(UriError::MissingLabel);
        }
        if account.contains(':') {
            return Err(UriError::Colon { part: "account" });
        }

        let mut secret = None;
        let mut issuer_param = None;
        let mut algorithm = Algorithm::Sha1;
        let mut digits = Digits::DEFAULT;
        let mut period = Interval::DEFAULT;
        let mut counter = None;
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k, true).map_err(|()| UriError::Encoding("a parameter name"))?;
            let key = key.to_ascii_lowercase();
            if seen.contains(&key) {
                return Err(UriError::Duplicate(key));
            }
            seen.push(key.clone());
            match key.as_str() {
                "secret" => {
                    let v = zeroize::Zeroizing::new(
                        decode(v, true).map_err(|()| UriError::Encoding("secret"))?,
                    );
                    secret = Some(Secret::from_base32(&v)?);
                }
                "issuer" => {
                    issuer_param =
                        Some(decode(v, true).map_err(|()| UriError::Encoding("issuer"))?);
                }
                "algorithm" => {
                    algorithm =
                        Algorithm::parse(v).ok_or_else(|| UriError::Algorithm(v.to_owned()))?;
                }
                "digits" => digits = Digits::new(number("digits", v)?)?,
                "period" => period = Interval::new(number("period", v)?)?,
                "counter" => {
                    counter = Some(v.parse::<u64>().map_err(|_| UriError::NotANumber {
                        name: "counter",
                        value: v.to_owned(),
                    })?);
                }
                _ => {} // Unknown parameters (image, color, ...) are ignored, as apps do.
            }
        }
        let kind = match kind_text.to_ascii_lowercase().as_str() {
            "totp" => OtpKind::Totp,
            "hotp" => OtpKind::Hotp {
                counter: counter.ok_or(UriError::MissingCounter)?,
            },
            _ => return Err(UriError::Type(kind_text.to_owned())),
        };
        let issuer = match (label_issuer, issuer_param) {
            // The label's issuer was trimmed above; the parameter keeps its
            // white space, so compare it trimmed and keep it as written.
            (Some(l), Some(p)) if l != p.trim() => {
                return Err(UriError::IssuerMismatch { label: l, param: p });
            }
            (l, p) => p.or(l),
        };
        if issuer.as_deref().is_some_and(|i| i.contains(':')) {
            return Err(UriError::Colon { part: "issuer" });
        }
        Ok(Self {
            kind,
            issuer,
            account,
            secret: secret.ok_or(UriError::MissingSecret)?,
            algorithm,
            digits,
            // A period means nothing to HOTP and `build` does not write it:
            // keep the default so that what parses builds back the same.
            period: match kind {
                OtpKind::Totp => period,
                OtpKind::Hotp { .. } => Interval::DEFAULT,
            },
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Percent-decodes; in the query, `+` also means a space (form encoding).
fn decode(text: &str, plus_is_space: bool) -> Result<String, ()> {
    let text = if plus_is_space && text.contains('+') {
        std::borrow::Cow::Owned(text.replace('+', " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    percent_decode_str(&text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ())
}

fn number(name: &'static str, value: &str) -> Result<i64, UriError> {
    value.parse::<i64>().map_err(|_| UriError::NotANumber {
        name,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyUri {
        KeyUri {
            kind: OtpKind::Totp,
            issuer: Some("iXsystems".into()),
            account: "nas 1@TrueNAS".into(),
            secret: Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap(),
            algorithm: Algorithm::Sha1,
            digits: Digits::DEFAULT,
            period: Interval::DEFAULT,
        }
    }

    #[test]
    fn builds_the_spec_form() {
        assert_eq!(
            sample().build().unwrap(),
            "otpauth://totp/iXsystems:nas%201%40TrueNAS?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\
             &issuer=iXsystems&digits=6&period=30"
        );
    }

    #[test]
    fn refuses_colons_in_label_parts() {
        let mut u = sample();
        u.account = "a:b".into();
        assert_eq!(u.build(), Err(UriError::Colon { part: "account" }));
        let mut u = sample();
        u.issuer = Some("x:y".into());
        assert_eq!(u.build(), Err(UriError::Colon { part: "issuer" }));
    }

    #[test]
    fn parses_what_it_builds() {
        let u = sample();
        assert_eq!(KeyUri::parse(&u.build().unwrap()).unwrap(), u);
    }

    /// Found by the key_uri fuzz target: an HOTP URI's `period` came back
    /// in the key, but `build` leaves it out, so parse -> build -> parse
    /// changed the key.
    #[test]
    fn hotp_keys_have_no_period() {
        let u = KeyUri::parse("otpauth://hotp/acme:bob?secret=JBSWY3DPEHPK3PXP&counter=7&period=8")
            .unwrap();
        assert_eq!(u.period, Interval::DEFAULT);
        assert_eq!(KeyUri::parse(&u.build().unwrap()).unwrap(), u);
        // The parameter is still checked.
        assert!(KeyUri::parse("otpauth://hotp/a:b?secret=AA&counter=1&period=x").is_err());
    }

    #[test]
    fn parses_lenient_forms() {
        let u = KeyUri::parse("otpauth://TOTP/ACME%20Co:john.doe@email.com?secret=hxdmvjecjjwsrb3hwizr4ifugf====&issuer=ACME+Co&algorithm=sha256&digits=8&period=60&image=x").unwrap();
        assert_eq!(u.issuer.as_deref(), Some("ACME Co"));
        assert_eq!(u.account, "john.doe@email.com");
        assert_eq!(u.algorithm, Algorithm::Sha256);
        assert_eq!((u.digits.get(), u.period.get()), (8, 60));
    }

    #[test]
    fn names_what_is_wrong() {
        let cases: &[(&str, UriError)] = &[
            (
                "http://totp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP",
                UriError::Scheme,
            ),
            (
                "otpauth://motp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP",
                UriError::Type("motp".into()),
            ),
            ("otpauth://totp/a?issuer=x", UriError::MissingSecret),
            (
                "otpauth://totp/?secret=JBSWY3DPEHPK3PXPJBSWY3DP",
                UriError::MissingLabel,
            ),
            (
                "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP",
                UriError::MissingCounter,
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP&digits=x",
                UriError::NotANumber {
                    name: "digits",
                    value: "x".into(),
                },
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP&algorithm=MD5",
                UriError::Algorithm("MD5".into()),
            ),
            (
                "otpauth://totp/A:a?secret=JBSWY3DPEHPK3PXPJBSWY3DP&issuer=B",
                UriError::IssuerMismatch {
                    label: "A".into(),
                    param: "B".into(),
                },
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP&secret=JBSWY3DPEHPK3PXPJBSWY3DP",
                UriError::Duplicate("secret".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&KeyUri::parse(text).unwrap_err(), want, "{text}");
        }
        assert!(matches!(
            KeyUri::parse("otpauth://totp/a?secret=JBSW1").unwrap_err(),
            UriError::Secret(_)
        ));
        assert!(matches!(
            KeyUri::parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PXPJBSWY3DP&digits=9").unwrap_err(),
            UriError::Range(_)
        ));
    }
}
