//! A zero-copy protobuf reader for the remote_write hot path.
//!
//! prost decodes every label of a `WriteRequest` into two owned `String`s; this reader
//! walks the wire format in place and hands out slices of the decompressed body, so a
//! request's labels are only copied once, into the label set that goes to storage.
//!
//! It accepts and rejects exactly what prost 0.14 does for the messages it reads:
//! varints of at most 10 bytes without overflow, keys up to `u32::MAX` with a field
//! number ≥ 1, wire types 0–5, unknown fields (groups included) skipped, the same
//! 100-level nesting budget, a known field with the wrong wire type refused, strings
//! checked as UTF-8, and the last value winning for a scalar field given twice. The
//! property tests in `wire_tests.rs` compare it with prost on random and mutated inputs.

use std::fmt;

/// prost's nesting budget for one decode (its `RECURSION_LIMIT`).
pub(crate) const RECURSION_LIMIT: u32 = 100;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    /// A varint ran past the end of the buffer.
    TruncatedVarint,
    /// A varint longer than 10 bytes, or one that overflows 64 bits.
    InvalidVarint,
    /// A key larger than `u32::MAX`.
    InvalidKey,
    /// Field number 0.
    InvalidTag,
    /// Wire type 6 or 7.
    InvalidWireType,
    /// A field (or its length) runs past the end of its message.
    Truncated,
    /// An end-group key without its start, or for another field.
    UnexpectedEndGroup,
    /// A known field arrived with another wire type than its type has.
    WrongWireType(u32),
    /// Nesting deeper than [`RECURSION_LIMIT`].
    RecursionLimit,
    /// A string field that is not UTF-8.
    NotUtf8,
    /// A native histogram prost could not decode.
    Histogram,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TruncatedVarint => f.write_str("truncated varint"),
            WireError::InvalidVarint => f.write_str("invalid varint"),
            WireError::InvalidKey => f.write_str("invalid key value"),
            WireError::InvalidTag => f.write_str("invalid tag value: 0"),
            WireError::InvalidWireType => f.write_str("invalid wire type value"),
            WireError::Truncated => f.write_str("a field runs past the end of its message"),
            WireError::UnexpectedEndGroup => f.write_str("unexpected end group tag"),
            WireError::WrongWireType(number) => {
                write!(f, "field {number} has the wrong wire type")
            }
            WireError::RecursionLimit => f.write_str("recursion limit reached"),
            WireError::NotUtf8 => f.write_str("invalid string value: data is not UTF-8 encoded"),
            WireError::Histogram => f.write_str("invalid native histogram"),
        }
    }
}

/// The payload of one field, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5 (no known field of ours has it, so its value is not kept).
    Fixed32,
    /// Wire type 3: a group, already skipped (no known field of ours is a group).
    Group,
}

impl<'a> Value<'a> {
    /// The payload of a length-delimited field (string, bytes, message).
    #[inline]
    pub(crate) fn bytes(self, number: u32) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(payload) => Ok(payload),
            _ => Err(WireError::WrongWireType(number)),
        }
    }

    /// A UTF-8 string field.
    #[inline]
    pub(crate) fn str(self, number: u32) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(number)?).map_err(|_| WireError::NotUtf8)
    }

    /// A `double` field.
    #[inline]
    pub(crate) fn double(self, number: u32) -> Result<f64, WireError> {
        match self {
            Value::Fixed64(bits) => Ok(f64::from_bits(bits)),
            _ => Err(WireError::WrongWireType(number)),
        }
    }

    /// An `int64` field (two's complement varint).
    #[inline]
    pub(crate) fn int64(self, number: u32) -> Result<i64, WireError> {
        match self {
            Value::Varint(value) => Ok(value as i64),
            _ => Err(WireError::WrongWireType(number)),
        }
    }
}

/// Reads a varint as prost does: at most 10 bytes, the 10th at most 1.
#[inline]
pub(crate) fn read_varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    // Fast path: one byte.
    if let Some((&byte, rest)) = buf.split_first()
        && byte < 0x80
    {
        *buf = rest;
        return Ok(u64::from(byte));
    }
    let mut value = 0u64;
    for count in 0..10 {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(if count == 0 {
                WireError::Truncated
            } else {
                WireError::TruncatedVarint
            });
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (count * 7);
        if byte < 0x80 {
            if count == 9 && byte >= 0x02 {
                return Err(WireError::InvalidVarint);
            }
            return Ok(value);
        }
    }
    Err(WireError::InvalidVarint)
}

#[inline]
fn take<'a>(buf: &mut &'a [u8], length: u64) -> Result<&'a [u8], WireError> {
    if length > buf.len() as u64 {
        return Err(WireError::Truncated);
    }
    let (field, rest) = buf.split_at(length as usize);
    *buf = rest;
    Ok(field)
}

/// Reads a key: (field number, wire type).
#[inline]
fn read_key(buf: &mut &[u8]) -> Result<(u32, u8), WireError> {
    let key = read_varint(buf)?;
    if key > u64::from(u32::MAX) {
        return Err(WireError::InvalidKey);
    }
    let wire_type = (key & 7) as u8;
    if wire_type > 5 {
        return Err(WireError::InvalidWireType);
    }
    let number = (key as u32) >> 3;
    if number == 0 {
        return Err(WireError::InvalidTag);
    }
    Ok((number, wire_type))
}

/// Skips the rest of a group started by field `number`, as prost's `skip_field` does.
fn skip_group(buf: &mut &[u8], number: u32, budget: u32) -> Result<(), WireError> {
    loop {
        let (inner, wire_type) = read_key(buf)?;
        if wire_type == 4 {
            if inner != number {
                return Err(WireError::UnexpectedEndGroup);
            }
            return Ok(());
        }
        // prost checks the budget of the nested field before reading it.
        let nested = budget - 1;
        if nested == 0 {
            return Err(WireError::RecursionLimit);
        }
        read_value(buf, inner, wire_type, nested)?;
    }
}

/// Reads the payload of a field whose key was read; `budget` is prost's recursion
/// count of the message holding the field (never 0 here).
#[inline]
fn read_value<'a>(
    buf: &mut &'a [u8],
    number: u32,
    wire_type: u8,
    budget: u32,
) -> Result<Value<'a>, WireError> {
    Ok(match wire_type {
        0 => Value::Varint(read_varint(buf)?),
        1 => {
            let bytes = take(buf, 8)?;
            Value::Fixed64(u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
        }
        2 => {
            let length = read_varint(buf)?;
            Value::Bytes(take(buf, length)?)
        }
        3 => {
            if budget == 0 {
                return Err(WireError::RecursionLimit);
            }
            skip_group(buf, number, budget)?;
            Value::Group
        }
        4 => return Err(WireError::UnexpectedEndGroup),
        _ => {
            take(buf, 4)?;
            Value::Fixed32
        }
    })
}

/// The fields of one message, in wire order. `budget` is prost's recursion count for
/// the message: [`RECURSION_LIMIT`] for the top-level one, one less per nesting level.
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
    budget: u32,
}

impl<'a> Fields<'a> {
    /// Walks `message`, read with recursion count `budget`.
    #[inline]
    pub(crate) fn new(message: &'a [u8], budget: u32) -> Self {
        Fields {
            rest: message,
            budget,
        }
    }

    /// The next field, or `None` at the end of the message.
    #[inline]
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (number, wire_type) = read_key(&mut self.rest)?;
        let value = read_value(&mut self.rest, number, wire_type, self.budget)?;
        Ok(Some((number, value)))
    }

    /// How many bytes of the message were read so far.
    #[inline]
    pub(crate) fn offset(&self, message: &[u8]) -> usize {
        message.len() - self.rest.len()
    }

    /// The recursion count for a message nested in this one. prost checks the budget
    /// of the holder before it decodes a nested message.
    #[inline]
    pub(crate) fn nested_budget(&self) -> Result<u32, WireError> {
        match self.budget {
            0 => Err(WireError::RecursionLimit),
            budget => Ok(budget - 1),
        }
    }
}

/// A remote_write 1.0 `Label`, or a (name, value) pair of an exemplar: read from
/// `payload` with recursion count `budget`.
#[inline]
pub(crate) fn label(payload: &[u8], budget: u32) -> Result<(&str, &str), WireError> {
    let mut name = "";
    let mut value = "";
    let mut fields = Fields::new(payload, budget);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => name = field.str(1)?,
            2 => value = field.str(2)?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// A remote_write 1.0 `Sample`: (value, timestamp).
#[inline]
pub(crate) fn sample(payload: &[u8], budget: u32) -> Result<(f64, i64), WireError> {
    let mut value = 0.0;
    let mut timestamp = 0;
    let mut fields = Fields::new(payload, budget);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => value = field.double(1)?,
            2 => timestamp = field.int64(2)?,
            _ => {}
        }
    }
    Ok((value, timestamp))
}

/// A remote_write 1.0 `Exemplar`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ExemplarV1<'a> {
    /// Its labels, in wire order.
    pub labels: Vec<(&'a str, &'a str)>,
    /// `value`.
    pub value: f64,
    /// `timestamp`, Unix ms.
    pub timestamp: i64,
}

fn exemplar(payload: &[u8], budget: u32) -> Result<ExemplarV1<'_>, WireError> {
    let mut out = ExemplarV1::default();
    let mut fields = Fields::new(payload, budget);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => out
                .labels
                .push(label(field.bytes(1)?, fields.nested_budget()?)?),
            2 => out.value = field.double(2)?,
            3 => out.timestamp = field.int64(3)?,
            _ => {}
        }
    }
    Ok(out)
}

/// A remote_write 1.0 `TimeSeries`, borrowed from the body. Reused from series to
/// series of a request, so its vectors keep their capacity.
#[derive(Debug, Default)]
pub(crate) struct SeriesV1<'a> {
    /// Labels in wire order (not yet validated or sorted), once [`SeriesV1::parse_labels`]
    /// has read them: a label set found in the cache by its raw bytes is never parsed.
    pub labels: Vec<(&'a str, &'a str)>,
    /// The payloads of the `labels` fields, and the recursion count they are read with.
    label_fields: Vec<&'a [u8]>,
    label_budget: u32,
    /// (value, timestamp) pairs.
    pub samples: Vec<(f64, i64)>,
    /// Exemplars.
    pub exemplars: Vec<ExemplarV1<'a>>,
    /// Native histograms (decoded by prost to validate them, then only counted).
    pub histograms: usize,
    /// The `labels` fields (keys included) when they are one contiguous run of the
    /// message, as every sender encodes them: the cache key of the label set.
    pub raw_labels: Option<&'a [u8]>,
}

impl<'a> SeriesV1<'a> {
    /// Reads one `TimeSeries` message with recursion count `budget` into `self`.
    pub(crate) fn read(&mut self, payload: &'a [u8], budget: u32) -> Result<(), WireError> {
        self.labels.clear();
        self.label_fields.clear();
        self.samples.clear();
        self.exemplars.clear();
        self.histograms = 0;
        self.raw_labels = None;
        // Where the run of label fields starts and ends, and whether it was broken.
        let (mut run_start, mut run_end, mut broken) = (None, 0, false);
        let mut fields = Fields::new(payload, budget);
        loop {
            let start = fields.offset(payload);
            let Some((number, field)) = fields.next_field()? else {
                break;
            };
            if number == 1 {
                if run_start.is_some() && run_end != start {
                    broken = true;
                }
                run_start.get_or_insert(start);
                run_end = fields.offset(payload);
            }
            match number {
                1 => {
                    self.label_fields.push(field.bytes(1)?);
                    self.label_budget = fields.nested_budget()?;
                }
                2 => self
                    .samples
                    .push(sample(field.bytes(2)?, fields.nested_budget()?)?),
                3 => self
                    .exemplars
                    .push(exemplar(field.bytes(3)?, fields.nested_budget()?)?),
                4 => {
                    let payload = field.bytes(4)?;
                    fields.nested_budget()?;
                    <proto::prometheus::v1::Histogram as prost::Message>::decode(payload)
                        .map_err(|_| WireError::Histogram)?;
                    self.histograms += 1;
                }
                _ => {}
            }
        }
        if let (Some(start), false) = (run_start, broken) {
            self.raw_labels = payload.get(start..run_end);
        }
        Ok(())
    }

    /// Reads the `labels` fields into [`SeriesV1::labels`] (names and values checked to
    /// be UTF-8, as prost does).
    pub(crate) fn parse_labels(&mut self) -> Result<(), WireError> {
        self.labels.clear();
        for payload in &self.label_fields {
            self.labels.push(label(payload, self.label_budget)?);
        }
        Ok(())
    }
}

/// A remote_write 1.0 `MetricMetadata`, borrowed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct MetadataV1<'a> {
    /// `type` (a `MetricType` number).
    pub kind: i32,
    /// `metric_family_name`.
    pub family: &'a str,
    /// `help`.
    pub help: &'a str,
    /// `unit`.
    pub unit: &'a str,
}

/// Reads one `MetricMetadata` message with recursion count `budget`.
pub(crate) fn metadata(payload: &[u8], budget: u32) -> Result<MetadataV1<'_>, WireError> {
    let mut out = MetadataV1::default();
    let mut fields = Fields::new(payload, budget);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => match field {
                Value::Varint(value) => out.kind = value as i32,
                _ => return Err(WireError::WrongWireType(1)),
            },
            2 => out.family = field.str(2)?,
            4 => out.help = field.str(4)?,
            5 => out.unit = field.str(5)?,
            _ => {}
        }
    }
    Ok(out)
}
