//! QR codes of provisioning URIs as SVG documents, from the `qrcode`
//! crate's renderer: what `user.provisioning_qr` and
//! `auth.twofactor.provisioning_qr` return, and what the CLI writes with
//! `--svg`. The text is a provisioning URI, so the document carries the
//! secret: it is wiped when dropped.

use qrcode::QrCode;
use zeroize::Zeroizing;

/// Pixels per module (the CLI's PNG files use the same size).
pub const MODULE_PIXELS: u32 = 8;

/// An SVG document of `text` as a QR code, with the 4-module quiet zone.
pub fn svg(text: &str) -> Result<Zeroizing<String>, qrcode::types::QrError> {
    let code = QrCode::new(text.as_bytes())?;
    Ok(Zeroizing::new(
        code.render::<qrcode::render::svg::Color<'_>>()
            .quiet_zone(true)
            .module_dimensions(MODULE_PIXELS, MODULE_PIXELS)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    #[test]
    fn an_svg_document() {
        let svg = super::svg("otpauth://totp/i:a?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert!(
            svg.contains("<svg") && svg.ends_with("</svg>"),
            "{}",
            svg.as_str()
        );
    }
}
