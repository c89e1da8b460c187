//! agent-relay's compiled core: the per-request byte work of `agent_relay.httpwire.codec`
//! (parse an HTTP/1.1 request or response head, write one) and of `agent_relay.mux`
//! (split a received buffer into yamux frames).
//!
//! The pure-Python modules are the reference: every function here makes exactly their
//! accept/reject decisions and returns what they return (tests/unit/test_native_fuzz.py
//! runs both on the same inputs). Errors are `ValueError(message, status)`; the Python
//! side turns them into its own exception types. State (connection states, stream
//! windows) stays in Python: these functions are pure.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

// ------------------------------------------------------------------ byte classes

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-!#$%&'*+.^_`|~".contains(&b)
}

/// What Python's bytes `\s` and `bytes.strip()` call whitespace.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The codec's field-value character: any byte but NUL and whitespace.
fn is_vchar(b: u8) -> bool {
    b != 0 && !is_ws(b)
}

fn strip_ws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Python's `repr()` of a bytes object, for error messages identical to the reference's.
fn bytes_repr(s: &[u8]) -> String {
    let quote = if s.contains(&b'\'') && !s.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in s {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

// ------------------------------------------------------------------ errors

struct Error {
    message: String,
    status: u16,
}

fn fail<T>(message: impl Into<String>, status: u16) -> Result<T, Error> {
    Err(Error {
        message: message.into(),
        status,
    })
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err((e.message, e.status))
    }
}

// ------------------------------------------------------------------ header fields

type Field<'a> = (Vec<u8>, Cow<'a, [u8]>);

/// `name: value` (no line end): the lower-case name and where the value lies (without
/// the surrounding blanks), or None when the line is not a header field.
fn parse_field(line: &[u8]) -> Option<(Vec<u8>, std::ops::Range<usize>)> {
    let colon = line.iter().position(|&b| !is_tchar(b))?;
    if colon == 0 || line[colon] != b':' {
        return None;
    }
    let rest = &line[colon + 1..];
    if !rest.iter().all(|&b| is_vchar(b) || b == b' ' || b == b'\t') {
        return None;
    }
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
    let end = rest
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    Some((
        line[..colon].to_ascii_lowercase(),
        colon + 1 + start..colon + 1 + end,
    ))
}

/// The fields of a header block (lines each ending in LF), folded lines unfolded.
fn split_fields(block: &[u8]) -> Result<Vec<Field<'_>>, Error> {
    let mut lines: Vec<&[u8]> = block.split(|&b| b == b'\n').collect();
    lines.pop();
    let mut unfolded: Vec<Cow<'_, [u8]>> = Vec::with_capacity(lines.len());
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let fold = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if fold == 0 {
            unfolded.push(Cow::Borrowed(line));
        } else if let Some(last) = unfolded.last_mut() {
            let last = last.to_mut();
            last.push(b' ');
            last.extend_from_slice(&line[fold..]);
        } else {
            return fail("continuation line at start of headers", 400);
        }
    }
    let mut fields = Vec::with_capacity(unfolded.len());
    for line in unfolded {
        let Some((name, value)) = parse_field(&line) else {
            return fail(format!("illegal header line: {}", bytes_repr(&line)), 400);
        };
        let value = match line {
            Cow::Borrowed(l) => Cow::Borrowed(&l[value]),
            Cow::Owned(l) => Cow::Owned(l[value].to_vec()),
        };
        fields.push((name, value));
    }
    Ok(fields)
}

#[derive(Default)]
struct Framing {
    chunked: bool,
    length: Option<u128>,
    close: bool,
    expect_continue: bool,
    upgrade: bool,
}

const CHUNKED: u8 = 1;
const CLOSE: u8 = 2;
const EXPECT_CONTINUE: u8 = 4;
const UPGRADE: u8 = 8;

impl Framing {
    fn flags(&self) -> u8 {
        (if self.chunked { CHUNKED } else { 0 })
            | (if self.close { CLOSE } else { 0 })
            | (if self.expect_continue {
                EXPECT_CONTINUE
            } else {
                0
            })
            | (if self.upgrade { UPGRADE } else { 0 })
    }
}

fn comma_values(value: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    value
        .split(|&b| b == b',')
        .map(|part| strip_ws(part).to_ascii_lowercase())
        .filter(|part| !part.is_empty())
}

/// The framing headers checked and noted, as the reference's `_normalize` does (a
/// repeated Content-Length kept once, Transfer-Encoding in lower case).
fn normalize<'a>(
    mut fields: Vec<Field<'a>>,
    framing: &mut Framing,
) -> Result<Vec<Field<'a>>, Error> {
    let mut seen_length: Option<Vec<u8>> = None;
    let mut repeated: Vec<usize> = Vec::new();
    for i in 0..fields.len() {
        let (name, value) = &fields[i];
        match name.as_slice() {
            b"content-length" => {
                let mut parts = value.split(|&b| b == b',').map(strip_ws);
                let length = parts.next().unwrap_or(b"").to_vec();
                if parts.any(|part| part != length.as_slice()) {
                    return fail("conflicting Content-Length headers", 400);
                }
                if length.is_empty() || !length.iter().all(u8::is_ascii_digit) || length.len() > 20
                {
                    return fail("bad Content-Length", 400);
                }
                if let Some(seen) = &seen_length {
                    if *seen != length {
                        return fail("conflicting Content-Length headers", 400);
                    }
                    repeated.push(i);
                    continue;
                }
                let parsed = length
                    .iter()
                    .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
                framing.length = Some(parsed);
                if length.as_slice() != value.as_ref() {
                    fields[i].1 = Cow::Owned(length.clone());
                }
                seen_length = Some(length);
            }
            b"transfer-encoding" => {
                if framing.chunked {
                    return fail("multiple Transfer-Encoding headers", 501);
                }
                let coding = value.to_ascii_lowercase();
                if coding != b"chunked" {
                    return fail("Only Transfer-Encoding: chunked is supported", 501);
                }
                framing.chunked = true;
                if coding.as_slice() != value.as_ref() {
                    fields[i].1 = Cow::Owned(coding);
                }
            }
            b"connection" => {
                if comma_values(value).any(|v| v == b"close") {
                    framing.close = true;
                }
            }
            b"expect" => {
                if comma_values(value).any(|v| v == b"100-continue") {
                    framing.expect_continue = true;
                }
            }
            b"upgrade" => {
                if comma_values(value).next().is_some() {
                    framing.upgrade = true;
                }
            }
            _ => {}
        }
    }
    if !repeated.is_empty() {
        let mut i = 0;
        fields.retain(|_| {
            let keep = !repeated.contains(&i);
            i += 1;
            keep
        });
    }
    Ok(fields)
}

fn headers_list<'py>(py: Python<'py>, fields: &[Field<'_>]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (name, value) in fields {
        let pair = PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)])?;
        list.append(pair)?;
    }
    Ok(list)
}

/// The first line of a head (without its line end) and the header block after it.
fn first_line(head: &[u8]) -> (&[u8], &[u8]) {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..end];
    let rest = if end < head.len() {
        &head[end + 1..]
    } else {
        &head[head.len()..]
    };
    (line.strip_suffix(b"\r").unwrap_or(line), rest)
}

fn is_version(v: &[u8]) -> bool {
    v.len() == 3 && v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit()
}

/// `METHOD TARGET HTTP/x.y`: method, target, version.
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let m = line.iter().take_while(|&&b| is_tchar(b)).count();
    if m == 0 || line.get(m) != Some(&b' ') {
        return None;
    }
    let t = line[m + 1..]
        .iter()
        .take_while(|&&b| (0x21..=0x7e).contains(&b))
        .count();
    if t == 0 {
        return None;
    }
    let rest = &line[m + 1 + t..];
    if rest.len() != 9 || &rest[..6] != b" HTTP/" || !is_version(&rest[6..]) {
        return None;
    }
    Some((&line[..m], &line[m + 1..m + 1 + t], &rest[6..]))
}

/// `HTTP/x.y NNN[ reason]`: version, status, reason.
fn status_line(line: &[u8]) -> Option<(&[u8], u16, &[u8])> {
    if line.len() < 12
        || &line[..5] != b"HTTP/"
        || !is_version(&line[5..8])
        || line[8] != b' '
        || !line[9..12].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let status = line[9..12]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let reason: &[u8] = if line.len() == 12 {
        b""
    } else {
        if line[12] != b' ' {
            return None;
        }
        let reason = &line[13..];
        if !reason
            .iter()
            .all(|&b| is_vchar(b) || b == b' ' || b == b'\t')
        {
            return None;
        }
        reason
    };
    Some((&line[5..8], status, reason))
}

// ------------------------------------------------------------------ the functions

/// A request head (its lines up to, not including, the empty line) parsed and checked:
/// `(method, target, version, headers, framing flags, content length or None)`.
#[pyfunction]
fn parse_request_head<'py>(py: Python<'py>, head: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    if head.is_empty() {
        return Err(Error {
            message: "no request line received".into(),
            status: 400,
        }
        .into());
    }
    let (line, block) = first_line(head);
    let Some((method, target, version)) = request_line(line) else {
        return Err(Error {
            message: format!("illegal request line: {}", bytes_repr(line)),
            status: 400,
        }
        .into());
    };
    let mut framing = Framing::default();
    let fields = normalize(split_fields(block)?, &mut framing)?;
    let hosts = fields.iter().filter(|(name, _)| name == b"host").count();
    if hosts == 0 && version == b"1.1" {
        return Err(Error {
            message: "Missing mandatory Host: header".into(),
            status: 400,
        }
        .into());
    }
    if hosts > 1 {
        return Err(Error {
            message: "Found multiple Host: headers".into(),
            status: 400,
        }
        .into());
    }
    (
        PyBytes::new(py, method),
        PyBytes::new(py, target),
        PyBytes::new(py, version),
        headers_list(py, &fields)?,
        framing.flags(),
        framing.length,
    )
        .into_pyobject(py)
}

/// A response head parsed and checked: `(version, status, reason, headers, framing
/// flags, content length or None)`. The status range is the caller's to check.
#[pyfunction]
fn parse_response_head<'py>(py: Python<'py>, head: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    if head.is_empty() {
        return Err(Error {
            message: "no response line received".into(),
            status: 400,
        }
        .into());
    }
    let (line, block) = first_line(head);
    let Some((version, status, reason)) = status_line(line) else {
        return Err(Error {
            message: format!("illegal status line: {}", bytes_repr(line)),
            status: 400,
        }
        .into());
    };
    let mut framing = Framing::default();
    let fields = normalize(split_fields(block)?, &mut framing)?;
    (
        PyBytes::new(py, version),
        status,
        PyBytes::new(py, reason),
        headers_list(py, &fields)?,
        framing.flags(),
        framing.length,
    )
        .into_pyobject(py)
}

/// The fields of a header block (trailers), checked like a head's: `(headers, flags,
/// content length or None)`.
#[pyfunction]
fn parse_fields<'py>(py: Python<'py>, block: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let mut framing = Framing::default();
    let fields = normalize(split_fields(block)?, &mut framing)?;
    (headers_list(py, &fields)?, framing.flags(), framing.length).into_pyobject(py)
}

/// A head as bytes: the first line (with its CRLF), the fields (Host first), the empty
/// line. A CR, LF or NUL inside a line is refused (ValueError). Fields must be
/// `(bytes, bytes)` tuples (else TypeError: the caller takes the general path).
#[pyfunction]
fn write_head<'py>(
    py: Python<'py>,
    first_line: &[u8],
    headers: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut fields: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> = Vec::new();
    for item in headers.try_iter()? {
        let item = item?;
        let pair = item
            .cast::<PyTuple>()
            .map_err(|_| PyTypeError::new_err("not a tuple"))?;
        if pair.len() != 2 {
            return Err(PyTypeError::new_err("not a pair"));
        }
        let name = pair.get_item(0)?.cast_into::<PyBytes>()?;
        let value = pair.get_item(1)?.cast_into::<PyBytes>()?;
        fields.push((name, value));
    }
    let is_host = |f: &(Bound<'py, PyBytes>, Bound<'py, PyBytes>)| f.0.as_bytes() == b"host";
    let order: Vec<usize> =
        if !fields.is_empty() && !is_host(&fields[0]) && fields.iter().any(is_host) {
            let hosts = (0..fields.len()).filter(|&i| is_host(&fields[i]));
            hosts
                .chain((0..fields.len()).filter(|&i| !is_host(&fields[i])))
                .collect()
        } else {
            (0..fields.len()).collect()
        };
    let size = first_line.len()
        + 2
        + fields
            .iter()
            .map(|(n, v)| n.as_bytes().len() + v.as_bytes().len() + 4)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(first_line);
    for i in order {
        let (name, value) = &fields[i];
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let count = fields.len() + 2;
    let lf = out.iter().filter(|&&b| b == b'\n').count();
    let cr = out.iter().filter(|&&b| b == b'\r').count();
    if lf != count || cr != count || out.contains(&0) {
        return Err(PyValueError::new_err((
            "a header name or value holds CR, LF or NUL",
            400u16,
        )));
    }
    Ok(PyBytes::new(py, &out))
}

/// The yamux frames of `data` from `pos`: a list of `(version, type, flags, stream id,
/// length, payload)` — payload the data frame's bytes that are here (maybe fewer than
/// its length, for the last frame), None for other types — and where parsing stopped
/// (at a header not all here yet, or after a partial payload). Headers are not checked:
/// that is the session's (mux/connection.py) job, with its state.
#[pyfunction]
fn split_frames<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyBytes>,
    mut pos: usize,
) -> PyResult<(Bound<'py, PyList>, usize)> {
    let bytes = data.as_bytes();
    let end = bytes.len();
    let frames = PyList::empty(py);
    while end.saturating_sub(pos) >= 12 {
        let h = &bytes[pos..pos + 12];
        let version = h[0];
        let kind = h[1];
        let flags = u16::from_be_bytes([h[2], h[3]]);
        let stream_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let length = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        pos += 12;
        if kind == 0 && version == 0 && length > 0 {
            let take = (length as usize).min(end - pos);
            let payload = PyBytes::new(py, &bytes[pos..pos + take]);
            frames.append((version, kind, flags, stream_id, length, payload))?;
            pos += take;
            if take < length as usize {
                break;
            }
        } else {
            frames.append((version, kind, flags, stream_id, length, py.None()))?;
        }
    }
    Ok((frames, pos))
}

#[pymodule]
fn agent_relay_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(parse_request_head, m)?)?;
    m.add_function(wrap_pyfunction!(parse_response_head, m)?)?;
    m.add_function(wrap_pyfunction!(parse_fields, m)?)?;
    m.add_function(wrap_pyfunction!(write_head, m)?)?;
    m.add_function(wrap_pyfunction!(split_frames, m)?)?;
    Ok(())
}
