//! Header lists between PHP arrays and HTTP/3 field lines.

use bytes::Bytes;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::types::{ZendHashTable, Zval};
use h3_core::qpack::HeaderField;

use crate::errors::{ErrorKind, QpError, QpResult};

/// `['name' => 'value', 'x' => ['a', 'b']]` → field lines. Names are
/// lower-cased (RFC 9114 §4.2: upper case is malformed in HTTP/3); a list
/// value gives one field line per element.
pub fn from_php(arr: &ZendHashTable, kind: ErrorKind) -> QpResult<Vec<HeaderField>> {
    let mut out = Vec::with_capacity(arr.len());
    for (key, value) in arr.iter() {
        let name = key.to_string().to_ascii_lowercase();
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == b':' && !name.starts_with(':') || b >= 0x7f) {
            return Err(QpError::new(kind, format!("invalid header name '{name}'")));
        }
        if let Some(list) = value.array() {
            for (_, v) in list.iter() {
                out.push(HeaderField::new(Bytes::from(name.clone()), value_bytes(&name, v, kind)?));
            }
        } else {
            out.push(HeaderField::new(Bytes::from(name), value_bytes(&key.to_string(), value, kind)?));
        }
    }
    Ok(out)
}

fn value_bytes(name: &str, v: &Zval, kind: ErrorKind) -> QpResult<Bytes> {
    let b: Vec<u8> = if let Some(s) = v.zend_str() {
        s.as_bytes().to_vec()
    } else if let Some(n) = v.long() {
        n.to_string().into_bytes()
    } else {
        return Err(QpError::new(kind, format!("header '{name}': value must be a string or int")));
    };
    // RFC 9110 §5.5: CR, LF and NUL are never valid in a field value.
    if b.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        return Err(QpError::new(kind, format!("header '{name}': value contains CR, LF or NUL")));
    }
    Ok(Bytes::from(b))
}

/// Field lines → `['name' => 'value']`; repeated names are joined with
/// ", " (RFC 9110 §5.3), except `set-cookie`, joined with "\n".
pub fn to_php(fields: &[HeaderField]) -> ZBox<ZendHashTable> {
    let mut merged: Vec<(String, Vec<u8>)> = Vec::with_capacity(fields.len());
    for f in fields {
        let name = String::from_utf8_lossy(&f.name).into_owned();
        if let Some((_, v)) = merged.iter_mut().find(|(n, _)| *n == name) {
            v.extend_from_slice(if name == "set-cookie" { b"\n" } else { b", " });
            v.extend_from_slice(&f.value);
        } else {
            merged.push((name, f.value.to_vec()));
        }
    }
    let mut ht = ZendHashTable::new();
    for (name, value) in merged {
        let mut z = Zval::new();
        z.set_binary(value);
        let _ = ht.insert(name.as_str(), z);
    }
    ht
}

/// The value of the first field called `name`.
pub fn get<'a>(fields: &'a [HeaderField], name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|f| f.name.as_ref() == name.as_bytes()).map(|f| f.value.as_ref())
}
