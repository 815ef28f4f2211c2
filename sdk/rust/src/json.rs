//! A small JSON reader for filter configuration: it walks the raw text on demand and never builds
//! a tree, which is all a flat `config` object needs. Values are views of the input.
//!
//! ```ignore
//! let cfg = sluice_filter::config();
//! let doc = Json::new(&cfg);
//! let header = doc.get("header").and_then(|v| v.as_str()).unwrap_or_else(|| "x-api-key".into());
//! for (key, consumer) in doc.get("keys").map(|k| k.members()).unwrap_or_default() { /* ... */ }
//! ```

/// A JSON value: a view of its text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Json<'a>(&'a [u8]);

impl<'a> Json<'a> {
    /// Wraps a document; leading and trailing whitespace is ignored.
    pub fn new(doc: &'a [u8]) -> Json<'a> {
        let start = skip_space(doc, 0);
        let end = value_end(doc, start).unwrap_or(doc.len());
        Json(&doc[start..end])
    }

    /// The value's raw text.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<Json<'a>> {
        self.members_raw().into_iter().find(|(k, _)| unescape(k).as_deref() == Some(key)).map(|(_, v)| v)
    }

    /// An object's members, keys decoded.
    pub fn members(&self) -> Vec<(String, Json<'a>)> {
        self.members_raw().into_iter().filter_map(|(k, v)| unescape(k).map(|k| (k, v))).collect()
    }

    /// An array's items (empty for anything else).
    pub fn items(&self) -> Vec<Json<'a>> {
        let d = self.0;
        let mut out = Vec::new();
        if d.first() != Some(&b'[') {
            return out;
        }
        let mut i = skip_space(d, 1);
        while i < d.len() && d[i] != b']' {
            let end = match value_end(d, i) {
                Some(e) => e,
                None => return out,
            };
            out.push(Json(&d[i..end]));
            i = skip_space(d, end);
            if i < d.len() && d[i] == b',' {
                i = skip_space(d, i + 1);
            }
        }
        out
    }

    /// The decoded string, if this is a string.
    pub fn as_str(&self) -> Option<String> {
        unescape(self.0)
    }

    /// The number, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        if self.0.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for &c in self.0 {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
        }
        Some(n)
    }

    /// The boolean, if this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.0 {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    fn members_raw(&self) -> Vec<(&'a [u8], Json<'a>)> {
        let d = self.0;
        let mut out = Vec::new();
        if d.first() != Some(&b'{') {
            return out;
        }
        let mut i = skip_space(d, 1);
        while i < d.len() && d[i] == b'"' {
            let kend = match string_end(d, i) {
                Some(e) => e,
                None => return out,
            };
            let colon = skip_space(d, kend);
            if colon >= d.len() || d[colon] != b':' {
                return out;
            }
            let vstart = skip_space(d, colon + 1);
            let vend = match value_end(d, vstart) {
                Some(e) => e,
                None => return out,
            };
            out.push((&d[i..kend], Json(&d[vstart..vend])));
            i = skip_space(d, vend);
            if i < d.len() && d[i] == b',' {
                i = skip_space(d, i + 1);
            }
        }
        out
    }
}

/// The index after the whitespace starting at `i`.
pub fn skip_space(d: &[u8], mut i: usize) -> usize {
    while i < d.len() && matches!(d[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index after the string starting at `d[i] == '"'`.
pub fn string_end(d: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < d.len() {
        match d[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The index after the JSON value starting at `i`.
pub fn value_end(d: &[u8], i: usize) -> Option<usize> {
    match d.get(i)? {
        b'"' => string_end(d, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < d.len() {
                match d[j] {
                    b'"' => {
                        j = string_end(d, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < d.len() && !matches!(d[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Decodes a JSON string literal (with its quotes); `None` if it is not one.
pub fn unescape(lit: &[u8]) -> Option<String> {
    if lit.len() < 2 || lit[0] != b'"' || lit[lit.len() - 1] != b'"' {
        return None;
    }
    let body = &lit[1..lit.len() - 1];
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'u' => {
                let hex = std::str::from_utf8(body.get(i..i + 4)?).ok()?;
                let cp = u32::from_str_radix(hex, 16).ok()?;
                i += 4;
                // Surrogate pairs are not combined: configuration keys and values are ASCII in practice.
                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config() {
        let doc = br#" {"header": "X-API-Key", "keys": {"alpha": "team-a", "b\"eta": "team-b"},
                        "list": [1, "two", {"x": [3]}], "n": 42, "on": true} "#;
        let j = Json::new(doc);
        assert_eq!(j.get("header").and_then(|v| v.as_str()).as_deref(), Some("X-API-Key"));
        let keys: Vec<(String, String)> =
            j.get("keys").unwrap().members().into_iter().map(|(k, v)| (k, v.as_str().unwrap())).collect();
        assert_eq!(keys, vec![("alpha".into(), "team-a".into()), ("b\"eta".into(), "team-b".into())]);
        let items = j.get("list").unwrap().items();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].raw(), br#"{"x": [3]}"#);
        assert_eq!(j.get("n").and_then(|v| v.as_u64()), Some(42));
        assert_eq!(j.get("on").and_then(|v| v.as_bool()), Some(true));
        assert!(j.get("absent").is_none());
        assert_eq!(unescape(br#""a\u0041\n""#).as_deref(), Some("aA\n"));
    }

    #[test]
    fn survives_malformed_input() {
        for doc in [&b"{"[..], b"{\"a\"", b"{\"a\":", b"[1,", b"\"open", b""] {
            let j = Json::new(doc);
            let _ = (j.get("a"), j.items(), j.members());
        }
    }
}
