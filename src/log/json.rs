//! JSON string escaping for access log lines that no request can break.
//!
//! Header values are bytes, not text: they may hold quotes, backslashes,
//! control bytes, NULs and sequences that are not UTF-8 (a lone 0xFF, an
//! overlong encoding, a surrogate). The output is always valid JSON and
//! valid UTF-8:
//! - `"` and `\` are escaped with a backslash;
//! - bytes below 0x20 and DEL (0x7F) become `\u00XX`;
//! - well-formed UTF-8 sequences are copied as they are;
//! - every byte of a sequence that is not well-formed UTF-8 becomes
//!   `\u00XX` of that byte (0xFF → `\u00ff`), so its value can still be
//!   read back; such a byte and the character U+00XX look alike in the
//!   parsed string, which is the price of keeping the byte.

/// Appends `s` to `out` as the inside of a JSON string (no quotes).
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    for chunk in s.utf8_chunks() {
        escape_str(chunk.valid(), out);
        for &b in chunk.invalid() {
            hex_escape(b, out);
        }
    }
}

fn escape_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f {
            out.extend_from_slice(&bytes[start..i]);
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
                out.push(b);
            } else {
                hex_escape(b, out);
            }
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

fn hex_escape(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 15)]);
}

/// Appends `"key":"value"` (or `"key":null`), preceded by a comma unless
/// it is the first field.
pub fn field(out: &mut Vec<u8>, first: bool, key: &str, value: Option<&[u8]>) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) => {
            out.push(b'"');
            escape_into(v, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(s, &mut out);
        String::from_utf8(out).expect("always UTF-8")
    }

    #[test]
    fn hostile_bytes() {
        assert_eq!(esc(b"a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(esc(b"\0\x01\n\x1f\x7f"), "\\u0000\\u0001\\u000a\\u001f\\u007f");
        assert_eq!(esc(b"\xff"), "\\u00ff");
        // An overlong '/' (C0 AF) and a CESU surrogate (ED A0 80): not UTF-8.
        assert_eq!(esc(b"\xc0\xaf"), "\\u00c0\\u00af");
        assert_eq!(esc(b"\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");
        // Well-formed UTF-8 is kept, also around a broken sequence.
        assert_eq!(esc("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(esc(b"\xc3\xa9\xe2\x82x"), "é\\u00e2\\u0082x");
    }
}
