//! JSON as Zarr metadata holds it: numbers are kept exactly as written (serde_json's
//! `arbitrary_precision`), and the bare `NaN`, `Infinity` and `-Infinity` that Python's
//! `json` module writes (zarr-python among others) are accepted.
//!
//! A bare non-finite number becomes a string value carrying a private marker; [`non_finite`]
//! recognises it, [`to_python_text`] writes it back bare, as Python would, and
//! [`with_named_non_finite`] turns it into the `"NaN"`/`"Infinity"`/`"-Infinity"` strings of
//! the Zarr specifications.

use serde_json::Value;

/// Prefix of the string a bare non-finite number is parsed into. It starts with a NUL
/// character, which no JSON text holds unescaped.
const MARKER: &str = "\u{0}zarrfs-non-finite:";
/// The marker as it appears inside JSON text.
const MARKER_TEXT: &str = "\\u0000zarrfs-non-finite:";
/// The bare tokens, longest first where one is a prefix of another's tail.
const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];

/// Checks that a metadata document is a JSON object declaring `"zarr_format": version`.
pub fn check_zarr_format(doc: &Value, version: u64) -> Result<(), String> {
    if !doc.is_object() {
        return Err("not a JSON object".into());
    }
    if doc.get("zarr_format").and_then(Value::as_u64) != Some(version) {
        return Err(format!("zarr_format is not {version}"));
    }
    Ok(())
}

/// Parses a JSON document, accepting bare `NaN`, `Infinity` and `-Infinity`.
pub fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
    match quote_non_finite(bytes) {
        Some(rewritten) => serde_json::from_slice(&rewritten),
        None => serde_json::from_slice(bytes),
    }
}

/// Rewrites bare non-finite tokens outside strings as marked strings; `None` when the text
/// holds none (the common case, parsed as is).
fn quote_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if matches!(b, b'N' | b'I' | b'-') {
            if let Some(token) = TOKENS.iter().find(|t| bytes[i..].starts_with(t.as_bytes())) {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 64));
                buf.extend_from_slice(&bytes[copied..i]);
                buf.push(b'"');
                buf.extend_from_slice(MARKER_TEXT.as_bytes());
                buf.extend_from_slice(token.as_bytes());
                buf.push(b'"');
                i += token.len();
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    let mut buf = out?;
    buf.extend_from_slice(&bytes[copied..]);
    Some(buf)
}

/// The value of a bare non-finite number parsed by [`parse`], if `value` is one.
pub fn non_finite(value: &Value) -> Option<f64> {
    match value.as_str()?.strip_prefix(MARKER)? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Pretty JSON text of `value` as Python's `json` module writes non-finite numbers (bare
/// `NaN`, `Infinity`, `-Infinity`); numbers otherwise exactly as parsed.
pub fn to_python_text(value: &Value) -> Vec<u8> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_string());
    let mut bytes = bare_non_finite(text).into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Compact one-line JSON text of `value`, non-finite numbers bare as Python writes them.
pub fn to_python_line(value: &Value) -> String {
    bare_non_finite(serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()))
}

/// JSON text with every marked non-finite number written bare.
fn bare_non_finite(text: String) -> String {
    if !text.contains(MARKER_TEXT) {
        return text;
    }
    TOKENS.iter().fold(text, |text, token| {
        text.replace(&format!("\"{MARKER_TEXT}{token}\""), token)
    })
}

/// A copy of `value` with every bare non-finite number replaced by the string the Zarr
/// specifications use for it (`"NaN"`, `"Infinity"`, `"-Infinity"`).
pub fn with_named_non_finite(value: &Value) -> Value {
    match value {
        Value::String(s) => match s.strip_prefix(MARKER) {
            Some(name) => Value::String(name.to_string()),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(with_named_non_finite).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_named_non_finite(v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_non_finite_numbers_parse_and_write_back_bare() {
        let text =
            br#"{"a": NaN, "b": [Infinity, -Infinity, 1.5], "s": "NaN Infinity \" NaN", "n": -1}"#;
        let value = parse(text).unwrap();
        assert!(non_finite(&value["a"]).unwrap().is_nan());
        assert_eq!(non_finite(&value["b"][0]), Some(f64::INFINITY));
        assert_eq!(non_finite(&value["b"][1]), Some(f64::NEG_INFINITY));
        assert_eq!(value["s"], "NaN Infinity \" NaN");
        assert_eq!(non_finite(&value["s"]), None);
        let back = String::from_utf8(to_python_text(&value)).unwrap();
        assert!(back.contains("\"a\": NaN"), "{back}");
        assert!(back.contains("Infinity,\n    -Infinity"), "{back}");
        assert!(!back.contains("zarrfs"), "{back}");
        let named = with_named_non_finite(&value);
        assert_eq!(named["a"], "NaN");
        assert_eq!(named["b"][1], "-Infinity");
    }

    #[test]
    fn numbers_keep_their_exact_text_and_value() {
        let text = br#"{"fill": 9.969209968386869e+36, "x": 1.0000000200408773e+20, "big": 123456789012345678901234567890, "i": -7, "f": 1.0}"#;
        let value = parse(text).unwrap();
        assert_eq!(value["fill"].as_f64(), Some(9.969209968386869e+36));
        assert_eq!(value["x"].as_f64(), Some(1.0000000200408773e+20));
        assert_eq!(value["i"].as_i64(), Some(-7));
        let back = String::from_utf8(to_python_text(&value)).unwrap();
        for number in [
            "9.969209968386869e+36",
            "1.0000000200408773e+20",
            "123456789012345678901234567890",
            "-7",
            "1.0",
        ] {
            assert!(back.contains(number), "{number} in {back}");
        }
    }

    #[test]
    fn invalid_text_is_still_an_error() {
        for text in [
            &b"{"[..],
            b"{\"a\": nan}",
            b"{\"a\": NaNa}",
            b"[Inf]",
            b"\"unterminated",
        ] {
            assert!(parse(text).is_err(), "{}", String::from_utf8_lossy(text));
        }
    }
}
