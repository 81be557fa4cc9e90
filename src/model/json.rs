//! The one pass over an input message's bytes: a flat JSON object's members,
//! each value located, not yet read.
//!
//! Every input is a flat object of strings and numbers. `serde_json` located
//! its fields through its generic visitor machinery (a `RawValue` each), and
//! that pass was the largest single cost of processing a message. This scanner
//! reads the common case directly. It is strict: whatever it is not sure of
//! (a nested value, any escape, a syntax error) it leaves to `serde_json`, so
//! the outcome, a value or the error message, is `serde_json`'s in every case
//! the scanner declines; the unit tests hold the two to the same answers.

/// A JSON value's text as it appears in the payload: a string keeps its
/// quotes. Always one whole, valid JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    pub fn get(&self) -> &'a str {
        self.0
    }

    /// A value `serde_json` located.
    pub fn from_serde(raw: &'a serde_json::value::RawValue) -> Self {
        Raw(raw.get())
    }
}

/// Calls `member(key, value)` for each member of the object in `text`, with
/// `None` for a `null` value; stops when it returns false. Returns `None`
/// (declined) unless `text` is exactly one object whose keys are plain
/// strings and whose values are scalars, and `member` took every member.
pub fn flat_object<'a>(
    text: &'a str,
    mut member: impl FnMut(&'a str, Option<Raw<'a>>) -> bool,
) -> Option<()> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return end(b, i + 1);
    }
    loop {
        let key_end = plain_string(b, i)?;
        let key = &text[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if *b.get(i)? != b':' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_end = scalar(b, i)?;
        let value = &text[i..value_end];
        if !member(key, (value != "null").then_some(Raw(value))) {
            return None;
        }
        i = skip_ws(b, value_end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return end(b, i + 1),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Only whitespace may follow the object.
fn end(b: &[u8], i: usize) -> Option<()> {
    (skip_ws(b, i) == b.len()).then_some(())
}

/// The end (past the closing quote) of a string at `i` with no escape and no
/// control character.
fn plain_string(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' | 0..=0x1f => return None,
            _ => j += 1,
        }
    }
}

/// The end of a scalar value at `i`: a plain string, a number or a literal.
fn scalar(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => plain_string(b, i),
        b'-' | b'0'..=b'9' => number(b, i),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        _ => None,
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some(end)
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as RFC 8259 has it.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i = some_digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = some_digits(b, i)?;
    }
    Some(i)
}

fn digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// At least one digit.
fn some_digits(b: &[u8], i: usize) -> Option<usize> {
    let end = digits(b, i);
    (end > i).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Option<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        flat_object(text, |k, v| {
            out.push((k.to_string(), v.map(|r| r.get().to_string())));
            true
        })?;
        Some(out)
    }

    #[test]
    fn reads_flat_objects() {
        assert_eq!(
            members(r#" {"a": "x y", "b":-1.5e+3,"c":true ,"d":null} "#).unwrap(),
            vec![
                ("a".into(), Some(r#""x y""#.into())),
                ("b".into(), Some("-1.5e+3".into())),
                ("c".into(), Some("true".into())),
                ("d".into(), None),
            ]
        );
        assert_eq!(members("{}").unwrap(), vec![]);
        assert_eq!(members(r#"{"a":0}"#).unwrap().len(), 1);
    }

    #[test]
    fn declines_what_it_is_not_sure_of() {
        for text in [
            "",
            "[]",
            "{",
            r#"{"a":1"#,
            r#"{"a":1,}"#,
            r#"{"a":1}x"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":"x\"y"}"#,
            r#"{"a\u0062":1}"#,
            "{\"a\":\"\x01\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "\u{a0}{}",
        ] {
            assert_eq!(members(text), None, "{text:?}");
        }
    }
}
