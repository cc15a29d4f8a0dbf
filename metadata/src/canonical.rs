//! OLPC canonical JSON, the byte string every signature in the system covers.
//!
//! Keys sorted by their bytes, no insignificant whitespace, only `"` and `\` escaped, integers
//! only (a float is refused, since two encoders could disagree about it).

use crate::error::{Error, Result};
use serde::Serialize;

/// Serialize `value` as OLPC canonical JSON.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(|e| {
            // serde_json reads an integer past the 64-bit range as a float: say so, or the
            // message blames a fraction the document may not have.
            let e = e.to_string();
            Error::Canonical(if e.contains("floating point") {
                format!("{e} (a number with a fraction or an exponent, or an integer outside the 64-bit range)")
            } else {
                e
            })
        })?;
    Ok(out)
}

/// Pretty JSON for files people read; signatures never cover these bytes.
pub fn to_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(value).map_err(|e| Error::Canonical(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: serde_json::Value) -> String {
        String::from_utf8(to_canonical(&v).unwrap()).unwrap()
    }

    #[test]
    fn keys_are_sorted_by_bytes_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": 1, "x": 2}], "B": 0}, "_type": "t"});
        assert_eq!(
            canon(v),
            r#"{"_type":"t","a":{"B":0,"z":[3,{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn only_quote_and_backslash_are_escaped() {
        // Control characters, tabs and newlines go out raw in OLPC canonical JSON.
        let v = json!({"s": "a\"b\\c\nd\te\u{1}"});
        let s = canon(v);
        assert_eq!(s.as_bytes(), b"{\"s\":\"a\\\"b\\\\c\nd\te\x01\"}");
    }

    #[test]
    fn unicode_is_written_as_utf8_not_escaped() {
        let v = json!({"ö": "ᚠ🍺", "o": "é"});
        let s = canon(v);
        assert_eq!(s, "{\"o\":\"é\",\"ö\":\"ᚠ🍺\"}");
        // Sorted by UTF-8 bytes: "o" (0x6f) before "ö" (0xc3 0xb6).
        assert!(s.find('o').unwrap() < s.find('ö').unwrap());
    }

    #[test]
    fn floats_are_refused() {
        assert!(to_canonical(&json!({"x": 1.5})).is_err());
    }

    #[test]
    fn integers_keep_their_sign_and_width() {
        assert_eq!(
            canon(json!([0, -1, 18446744073709551615u64])),
            "[0,-1,18446744073709551615]"
        );
    }

    #[test]
    fn parsing_then_canonicalizing_is_stable() {
        let src = "{ \"b\" : [1, 2],\n \"a\" : \"\\u00e9\\n\" }";
        let v: serde_json::Value = serde_json::from_str(src).unwrap();
        let once = to_canonical(&v).unwrap();
        // Escapes in the source are decoded; the canonical form carries the raw characters
        // (so it is not always strict JSON: a raw newline inside a string).
        assert_eq!(once, "{\"a\":\"é\n\",\"b\":[1,2]}".as_bytes());
        let reformatted: serde_json::Value =
            serde_json::from_str("{\"b\":[1,2],\"a\":\"\\u00e9\\n\"}").unwrap();
        assert_eq!(once, to_canonical(&reformatted).unwrap());
    }
}
