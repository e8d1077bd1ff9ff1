//! Base32 (`otp::decode_base32`, `otp::encode_base32`): decoding any text
//! never panics and what decodes encodes to text that decodes the same;
//! any bytes encode to text that decodes to them (encode → decode round
//! trip).

pub fn check(data: &[u8]) {
    if !data.is_empty() {
        let text = otp::encode_base32(data);
        assert_eq!(otp::decode_base32(&text).as_deref(), Ok(data), "{text}");
        let lower = text.to_ascii_lowercase();
        assert_eq!(otp::decode_base32(&lower).as_deref(), Ok(data), "{lower}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = otp::decode_base32(text) {
        let again = otp::encode_base32(&bytes);
        assert_eq!(otp::decode_base32(&again), Ok(bytes), "{text:?}");
    }
}
