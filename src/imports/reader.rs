//! Reading an import body as a stream of records: CSV (UTF-8 with or without BOM, comma
//! or semicolon, quoted fields across lines), NDJSON, or one JSON array. Nothing holds
//! more than one record at a time, and no record may exceed [`MAX_RECORD_BYTES`], so
//! memory stays flat whatever the size of the file.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use serde_json::{Map, Value};

/// The largest record (a CSV row, an NDJSON line, an array element) read.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

pub use crate::domain::import::Format;

/// One record of the file: its data row number (1 for the first row after a CSV
/// header), its cells by column, and its original cells (for `errors.csv`).
#[derive(Debug, Clone)]
pub struct Record {
    pub row: u64,
    pub cells: Vec<(String, Value)>,
    /// Undecodable bytes in the record (the file is not UTF-8).
    pub not_utf8: bool,
}

impl Record {
    /// The record's cells as text, in column order (JSON values other than strings
    /// written as JSON).
    pub fn raw(&self) -> Vec<String> {
        self.cells
            .iter()
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect()
    }
}

/// A problem with the file as a whole (the records read before it stand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub code: &'static str,
    pub message: String,
}

impl FileError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        FileError {
            code,
            message: message.into(),
        }
    }
}

/// Counts the bytes handed to the parser, so a record that grows past the limit stops
/// the read instead of the memory.
struct Metered<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    since_record: Rc<Cell<u64>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.since_record.get() > MAX_RECORD_BYTES + 64 * 1024 {
            return Err(io::Error::other(TOO_LARGE));
        }
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        self.since_record.set(self.since_record.get() + n as u64);
        Ok(n)
    }
}

const TOO_LARGE: &str = "record too large";

/// Yields the records of a body.
pub struct Records {
    inner: Inner,
    read: Rc<Cell<u64>>,
    since_record: Rc<Cell<u64>>,
    row: u64,
    done: bool,
    /// The CSV header as written in the file.
    pub header: Vec<String>,
}

enum Inner {
    Csv(Box<csv::Reader<Metered<Box<dyn Read>>>>),
    Lines(BufReader<Metered<Box<dyn Read>>>),
    Array(BufReader<Metered<Box<dyn Read>>>, bool),
}

/// Checks the start of the body (encoding, BOM, the CSV separator) and opens a reader.
pub fn open(format: Format, body: Box<dyn Read>) -> Result<Records, FileError> {
    let mut body = BufReader::with_capacity(64 * 1024, body);
    let head = body
        .fill_buf()
        .map_err(|e| FileError::new("body_unreadable", e.to_string()))?
        .to_vec();
    if head.is_empty() {
        return Err(FileError::new("empty_file", "the body is empty"));
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(FileError::new(
            "unsupported_encoding",
            "the file is UTF-16; save it as UTF-8 (CSV UTF-8 in spreadsheet programs)",
        ));
    }
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        body.consume(3);
    }
    let read = Rc::new(Cell::new(0));
    let since_record = Rc::new(Cell::new(0));
    let metered = Metered {
        inner: Box::new(body) as Box<dyn Read>,
        read: read.clone(),
        since_record: since_record.clone(),
    };
    let mut records = Records {
        inner: Inner::Lines(BufReader::new(Metered {
            inner: Box::new(io::empty()),
            read: read.clone(),
            since_record: since_record.clone(),
        })),
        read,
        since_record,
        row: 0,
        done: false,
        header: Vec::new(),
    };
    match format {
        Format::Csv => {
            let start = head.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(&head);
            let mut csv = csv::ReaderBuilder::new()
                .delimiter(separator(start))
                .flexible(true)
                .has_headers(false)
                .from_reader(metered);
            let mut header = csv::ByteRecord::new();
            match csv.read_byte_record(&mut header) {
                Ok(true) => {}
                Ok(false) => return Err(FileError::new("empty_file", "the body is empty")),
                Err(e) => return Err(csv_error(&e)),
            }
            let names: Vec<String> = header
                .iter()
                .map(|c| String::from_utf8(c.to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    FileError::new(
                        "unsupported_encoding",
                        "the header is not UTF-8 (Latin-1 or another code page?); save the file as UTF-8",
                    )
                })?;
            if names.iter().all(|n| n.trim().is_empty()) {
                return Err(FileError::new(
                    "no_header",
                    "the first line must name the columns",
                ));
            }
            records.header = names;
            records.since_record.set(0);
            records.inner = Inner::Csv(Box::new(csv));
        }
        Format::Ndjson => records.inner = Inner::Lines(BufReader::new(metered)),
        Format::JsonArray => {
            let mut reader = BufReader::new(metered);
            skip_ws(&mut reader)?;
            match next_byte(&mut reader)? {
                Some(b'[') => {}
                _ => {
                    return Err(FileError::new(
                        "malformed_json",
                        "a JSON body must be an array of objects",
                    ))
                }
            }
            records.inner = Inner::Array(reader, true);
        }
    }
    Ok(records)
}

/// The CSV separator: a semicolon when the first line has more of them than commas
/// outside quotes (spreadsheets in many locales write `;`).
fn separator(head: &[u8]) -> u8 {
    let (mut commas, mut semis, mut quoted) = (0, 0, false);
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semis += 1,
            b'\n' if !quoted => break,
            _ => {}
        }
    }
    if semis > commas {
        b';'
    } else {
        b','
    }
}

fn csv_error(e: &csv::Error) -> FileError {
    match e.kind() {
        csv::ErrorKind::Io(io) if io.to_string() == TOO_LARGE => too_large(),
        _ => FileError::new("malformed_csv", e.to_string()),
    }
}

fn too_large() -> FileError {
    FileError::new(
        "record_too_large",
        format!("a record is longer than {MAX_RECORD_BYTES} bytes; the file is read up to it"),
    )
}

fn next_byte<R: BufRead>(r: &mut R) -> Result<Option<u8>, FileError> {
    let buf = r.fill_buf().map_err(io_error)?;
    let Some(&b) = buf.first() else {
        return Ok(None);
    };
    r.consume(1);
    Ok(Some(b))
}

fn skip_ws<R: BufRead>(r: &mut R) -> Result<(), FileError> {
    loop {
        let buf = r.fill_buf().map_err(io_error)?;
        let n = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let all = n == buf.len();
        let empty = buf.is_empty();
        r.consume(n);
        if empty || !all {
            return Ok(());
        }
    }
}

fn io_error(e: io::Error) -> FileError {
    if e.to_string() == TOO_LARGE {
        too_large()
    } else {
        FileError::new("body_unreadable", e.to_string())
    }
}

/// What reading the next record gave.
pub enum Next {
    Record(Record),
    /// One record that could not be parsed (a malformed NDJSON line or array element);
    /// reading goes on.
    Bad {
        row: u64,
        code: &'static str,
        message: String,
    },
    End,
}

impl Records {
    /// Bytes of the body read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    /// The next record; a [`FileError`] ends the file.
    pub fn next_record(&mut self) -> Result<Next, FileError> {
        if self.done {
            return Ok(Next::End);
        }
        self.since_record.set(0);
        let next = match &mut self.inner {
            Inner::Csv(csv) => {
                let mut rec = csv::ByteRecord::new();
                loop {
                    match csv.read_byte_record(&mut rec) {
                        Ok(false) => break Next::End,
                        // A blank line, or a row of empty cells (spreadsheets leave them
                        // at the end).
                        Ok(true) if rec.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) => {
                            self.since_record.set(0);
                        }
                        Ok(true) => {
                            self.row += 1;
                            break csv_record(self.row, &self.header, &rec);
                        }
                        Err(e) => return Err(csv_error(&e)),
                    }
                }
            }
            Inner::Lines(r) => {
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let n = read_line(r, &mut line)?;
                    if n == 0 {
                        break Next::End;
                    }
                    if line.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    self.row += 1;
                    break object_record(self.row, &line);
                }
            }
            Inner::Array(r, first) => {
                skip_ws(r)?;
                let at_start = *first;
                *first = false;
                match r.fill_buf().map_err(io_error)?.first().copied() {
                    Some(b']') => {
                        r.consume(1);
                        self.done = true;
                        Next::End
                    }
                    None => {
                        return Err(FileError::new(
                            "malformed_json",
                            "the JSON array is not closed",
                        ))
                    }
                    Some(b) => {
                        if !at_start {
                            if b != b',' {
                                return Err(FileError::new(
                                    "malformed_json",
                                    format!("expected ',' or ']' after element {}", self.row),
                                ));
                            }
                            r.consume(1);
                            skip_ws(r)?;
                        }
                        let element = read_element(r)?;
                        self.row += 1;
                        object_record(self.row, &element)
                    }
                }
            }
        };
        if matches!(next, Next::End) {
            self.done = true;
        }
        Ok(next)
    }
}

fn csv_record(row: u64, header: &[String], rec: &csv::ByteRecord) -> Next {
    if rec.iter().skip(header.len()).any(|c| !c.is_empty()) {
        return Next::Bad {
            row,
            code: "ragged_row",
            message: format!(
                "the row has {} cells and the header {} columns (a missing quote?)",
                rec.len(),
                header.len()
            ),
        };
    }
    let mut not_utf8 = false;
    let mut cells = Vec::with_capacity(header.len());
    for (i, cell) in rec.iter().enumerate() {
        let text = match std::str::from_utf8(cell) {
            Ok(t) => t.to_owned(),
            Err(_) => {
                not_utf8 = true;
                String::from_utf8_lossy(cell).into_owned()
            }
        };
        let name = match header.get(i) {
            Some(h) => h.clone(),
            None => format!("column {}", i + 1),
        };
        cells.push((name, Value::String(text)));
    }
    Next::Record(Record {
        row,
        cells,
        not_utf8,
    })
}

/// Reads one line (without its end) up to the record limit; a longer line is an error.
fn read_line<R: BufRead>(r: &mut R, line: &mut Vec<u8>) -> Result<usize, FileError> {
    let mut total = 0;
    loop {
        let buf = r.fill_buf().map_err(io_error)?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        total += take;
        if line.len() as u64 > MAX_RECORD_BYTES {
            return Err(too_large());
        }
        if end {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return Ok(total);
        }
    }
}

/// Reads one JSON value of an array (up to its end, tracking strings and nesting).
fn read_element<R: BufRead>(r: &mut R) -> Result<Vec<u8>, FileError> {
    let mut out = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    loop {
        let buf = r.fill_buf().map_err(io_error)?;
        if buf.is_empty() {
            return Err(FileError::new(
                "malformed_json",
                "the JSON array is not closed",
            ));
        }
        let mut used = 0;
        let mut done = false;
        for &b in buf {
            if depth == 0 && !in_string && (b == b',' || b == b']') && !out.is_empty() {
                done = true;
                break;
            }
            used += 1;
            out.push(b);
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
        }
        r.consume(used);
        if out.len() as u64 > MAX_RECORD_BYTES {
            return Err(too_large());
        }
        if done {
            return Ok(out);
        }
    }
}

/// A JSON object as a record; anything else is a bad record.
fn object_record(row: u64, bytes: &[u8]) -> Next {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Next::Record(Record {
            row,
            cells: Map::into_iter(map).collect(),
            not_utf8: false,
        }),
        Ok(_) => Next::Bad {
            row,
            code: "not_an_object",
            message: "each record must be a JSON object".into(),
        },
        Err(e) => Next::Bad {
            row,
            code: "malformed_json",
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(format: Format, body: &[u8]) -> Result<Vec<Record>, FileError> {
        let mut r = open(format, Box::new(io::Cursor::new(body.to_vec())))?;
        let mut out = Vec::new();
        loop {
            match r.next_record()? {
                Next::Record(rec) => out.push(rec),
                Next::Bad { row, code, .. } => panic!("bad record {row}: {code}"),
                Next::End => return Ok(out),
            }
        }
    }

    fn text(rec: &Record, col: &str) -> String {
        rec.cells
            .iter()
            .find(|(c, _)| c == col)
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn csv_with_bom_semicolons_and_quoted_newlines() {
        let body = "\u{feff}name;note\n\"Acme; Ltd\";\"line one\nline two\"\n\nZeta;x\n";
        let recs = all(Format::Csv, body.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(text(&recs[0], "name"), "Acme; Ltd");
        assert_eq!(text(&recs[0], "note"), "line one\nline two");
        assert_eq!(recs[1].row, 2);
    }

    #[test]
    fn ndjson_and_arrays_stream_objects() {
        let recs = all(Format::Ndjson, b"{\"a\":1}\r\n\n{\"a\":\"]\"}\n").unwrap();
        assert_eq!(recs.len(), 2);
        let recs = all(Format::JsonArray, b" [ {\"a\":\"x,]\"}, {\"b\":[1,2]} ] ").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(text(&recs[0], "a"), "x,]");
        assert!(all(Format::JsonArray, b"{\"a\":1}").is_err());
        assert!(all(Format::JsonArray, b"[{\"a\":1}").is_err());
    }

    #[test]
    fn encodings_and_empty_bodies_are_named() {
        assert_eq!(all(Format::Csv, b"").unwrap_err().code, "empty_file");
        assert_eq!(
            all(Format::Csv, &[0xFF, 0xFE, b'a', 0]).unwrap_err().code,
            "unsupported_encoding"
        );
        let recs = all(Format::Csv, b"name\ncaf\xe9\n").unwrap();
        assert!(recs[0].not_utf8);
    }

    #[test]
    fn a_huge_field_stops_the_read() {
        let mut body = b"name\n\"".to_vec();
        body.extend(std::iter::repeat_n(b'x', 3 << 20));
        body.extend(b"\"\n");
        assert_eq!(
            all(Format::Csv, &body).unwrap_err().code,
            "record_too_large"
        );
        let mut line = vec![b'{'];
        line.extend(std::iter::repeat_n(b' ', 3 << 20));
        line.push(b'}');
        assert_eq!(
            all(Format::Ndjson, &line).unwrap_err().code,
            "record_too_large"
        );
    }
}
