//! Columnar access to span batches ([`storage::model::SPANS_SCHEMA`]) without copying
//! rows: filters and graph building read fields in place, and only the spans an answer
//! returns become [`SpanRecord`]s.

use arrow::array::{
    Array, AsArray, FixedSizeBinaryArray, Int32Array, Int64Array, MapArray, RecordBatch,
    StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType};
use proto::{SpanId, TraceId};
use storage::model::{Attributes, SpanRecord};

use crate::{Error, Result};

/// One span batch with its columns already downcast.
#[derive(Debug, Clone)]
pub(crate) struct SpanBatch {
    trace_id: FixedSizeBinaryArray,
    span_id: FixedSizeBinaryArray,
    parent: FixedSizeBinaryArray,
    service: StringArray,
    instance: StringArray,
    name: StringArray,
    kind: StringArray,
    start: TimestampNanosecondArray,
    duration: Int64Array,
    status: Int32Array,
    status_message: StringArray,
    peer_service: StringArray,
    attributes: MapArray,
    resource: MapArray,
    events: StringArray,
    links: StringArray,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::Internal(format!("span batch lacks column {name:?}")))
}

fn wrong(name: &str) -> Error {
    Error::Internal(format!("span column {name:?} has an unexpected type"))
}

fn fixed(batch: &RecordBatch, name: &str) -> Result<FixedSizeBinaryArray> {
    column(batch, name)?
        .as_fixed_size_binary_opt()
        .cloned()
        .ok_or_else(|| wrong(name))
}

fn utf8(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .cloned()
        .ok_or_else(|| wrong(name))
}

fn map(batch: &RecordBatch, name: &str) -> Result<MapArray> {
    column(batch, name)?
        .as_map_opt()
        .cloned()
        .ok_or_else(|| wrong(name))
}

impl SpanBatch {
    /// Downcasts the columns of one batch.
    pub(crate) fn new(batch: &RecordBatch) -> Result<Self> {
        Ok(SpanBatch {
            trace_id: fixed(batch, "trace_id")?,
            span_id: fixed(batch, "span_id")?,
            parent: fixed(batch, "parent_span_id")?,
            service: utf8(batch, "service")?,
            instance: utf8(batch, "instance")?,
            name: utf8(batch, "name")?,
            kind: utf8(batch, "kind")?,
            start: column(batch, "start")?
                .as_primitive_opt::<TimestampNanosecondType>()
                .cloned()
                .ok_or_else(|| wrong("start"))?,
            duration: column(batch, "duration_ns")?
                .as_primitive_opt::<Int64Type>()
                .cloned()
                .ok_or_else(|| wrong("duration_ns"))?,
            status: column(batch, "status_code")?
                .as_primitive_opt::<Int32Type>()
                .cloned()
                .ok_or_else(|| wrong("status_code"))?,
            status_message: utf8(batch, "status_message")?,
            peer_service: utf8(batch, "peer_service")?,
            attributes: map(batch, "attributes")?,
            resource: map(batch, "resource")?,
            events: utf8(batch, "events")?,
            links: utf8(batch, "links")?,
        })
    }

    /// Downcasts every batch.
    pub(crate) fn all(batches: &[RecordBatch]) -> Result<Vec<SpanBatch>> {
        batches.iter().map(SpanBatch::new).collect()
    }

    /// Number of spans.
    pub(crate) fn len(&self) -> usize {
        self.trace_id.len()
    }

    /// The span at `row`.
    pub(crate) fn span(&self, row: usize) -> SpanRef<'_> {
        SpanRef { batch: self, row }
    }
}

/// One span inside a [`SpanBatch`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanRef<'a> {
    batch: &'a SpanBatch,
    row: usize,
}

fn optional(array: &StringArray, row: usize) -> Option<&str> {
    array.is_valid(row).then(|| array.value(row))
}

fn map_entries(map: &MapArray, row: usize) -> impl Iterator<Item = (&str, &str)> {
    let offsets = map.value_offsets();
    let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
    let keys = map.keys().as_string_opt::<i32>();
    let values = map.values().as_string_opt::<i32>();
    (from..to).filter_map(move |i| {
        let (keys, values) = (keys?, values?);
        let value = if values.is_valid(i) {
            values.value(i)
        } else {
            ""
        };
        Some((keys.value(i), value))
    })
}

impl<'a> SpanRef<'a> {
    /// The trace id.
    pub(crate) fn trace_id(&self) -> TraceId {
        TraceId::from_slice(self.batch.trace_id.value(self.row)).unwrap_or_default()
    }

    /// The span id.
    pub(crate) fn span_id(&self) -> SpanId {
        SpanId::from_slice(self.batch.span_id.value(self.row)).unwrap_or_default()
    }

    /// The parent span id, absent on a root.
    pub(crate) fn parent_id(&self) -> Option<SpanId> {
        let parent = &self.batch.parent;
        parent
            .is_valid(self.row)
            .then(|| SpanId::from_slice(parent.value(self.row)))
            .flatten()
            .filter(|id| !id.is_zero())
    }

    /// The recording service.
    pub(crate) fn service(&self) -> &'a str {
        self.batch.service.value(self.row)
    }

    /// The operation name.
    pub(crate) fn name(&self) -> &'a str {
        self.batch.name.value(self.row)
    }

    /// The kind, lowercase (`server`, `client`…).
    pub(crate) fn kind(&self) -> &'a str {
        self.batch.kind.value(self.row)
    }

    /// Start, Unix nanoseconds.
    pub(crate) fn start_ns(&self) -> i64 {
        self.batch.start.value(self.row)
    }

    /// Duration in nanoseconds.
    pub(crate) fn duration_ns(&self) -> i64 {
        self.batch.duration.value(self.row)
    }

    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub(crate) fn status_code(&self) -> i32 {
        self.batch.status.value(self.row)
    }

    /// True when the span failed.
    pub(crate) fn is_error(&self) -> bool {
        self.status_code() == 2
    }

    /// The status message.
    pub(crate) fn status_message(&self) -> Option<&'a str> {
        optional(&self.batch.status_message, self.row)
    }

    /// The remote service called, when known.
    pub(crate) fn peer_service(&self) -> Option<&'a str> {
        optional(&self.batch.peer_service, self.row).filter(|p| !p.is_empty())
    }

    /// Span attributes.
    pub(crate) fn attributes(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        map_entries(&self.batch.attributes, self.row)
    }

    /// Resource attributes.
    pub(crate) fn resource(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        map_entries(&self.batch.resource, self.row)
    }

    /// One span attribute.
    pub(crate) fn attribute(&self, key: &str) -> Option<&'a str> {
        self.attributes().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// One resource attribute.
    pub(crate) fn resource_attribute(&self, key: &str) -> Option<&'a str> {
        self.resource().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Events as stored (JSON).
    pub(crate) fn events_json(&self) -> Option<&'a str> {
        optional(&self.batch.events, self.row)
    }

    /// Copies the span out.
    pub(crate) fn to_record(self) -> SpanRecord {
        let collect = |it: &mut dyn Iterator<Item = (&str, &str)>| -> Attributes {
            it.map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        SpanRecord {
            trace_id: self.trace_id(),
            span_id: self.span_id(),
            parent_span_id: self.parent_id(),
            service: self.service().to_string(),
            instance: optional(&self.batch.instance, self.row).map(str::to_string),
            name: self.name().to_string(),
            kind: self.kind().to_string(),
            start_ns: self.start_ns(),
            duration_ns: self.duration_ns(),
            status_code: self.status_code(),
            status_message: self.status_message().map(str::to_string),
            peer_service: self.peer_service().map(str::to_string),
            attributes: collect(&mut self.attributes()),
            resource: collect(&mut self.resource()),
            events: self.events_json().map(str::to_string),
            links: optional(&self.batch.links, self.row).map(str::to_string),
        }
    }
}

/// The span fields a search condition looks at, for full spans ([`SpanRef`]) and for
/// projected ones ([`ProjectedSpan`]) alike.
pub(crate) trait SearchFields<'a> {
    /// The recording service.
    fn service(&self) -> &'a str;
    /// The operation name.
    fn name(&self) -> &'a str;
    /// Duration in nanoseconds.
    fn duration_ns(&self) -> i64;
    /// True when the span failed.
    fn is_error(&self) -> bool;
    /// One span attribute.
    fn attribute(&self, key: &str) -> Option<&'a str>;
    /// One resource attribute.
    fn resource_attribute(&self, key: &str) -> Option<&'a str>;
    /// Events as stored (JSON).
    fn events_json(&self) -> Option<&'a str>;
}

impl<'a> SearchFields<'a> for SpanRef<'a> {
    fn service(&self) -> &'a str {
        SpanRef::service(self)
    }
    fn name(&self) -> &'a str {
        SpanRef::name(self)
    }
    fn duration_ns(&self) -> i64 {
        SpanRef::duration_ns(self)
    }
    fn is_error(&self) -> bool {
        SpanRef::is_error(self)
    }
    fn attribute(&self, key: &str) -> Option<&'a str> {
        SpanRef::attribute(self, key)
    }
    fn resource_attribute(&self, key: &str) -> Option<&'a str> {
        SpanRef::resource_attribute(self, key)
    }
    fn events_json(&self) -> Option<&'a str> {
        SpanRef::events_json(self)
    }
}

/// A span batch holding some of the span columns (the first pass of a trace search,
/// [`storage::Storage::span_timeline`]). `trace_id` and `start` are always there; a
/// column that was not read reads as empty (`""`, 0, no attribute), so a caller projects
/// every column its conditions look at.
#[derive(Debug, Clone)]
pub(crate) struct ProjectedSpans {
    trace_id: FixedSizeBinaryArray,
    start: TimestampNanosecondArray,
    service: Option<StringArray>,
    name: Option<StringArray>,
    duration: Option<Int64Array>,
    status: Option<Int32Array>,
    attributes: Option<MapArray>,
    resource: Option<MapArray>,
    events: Option<StringArray>,
}

impl ProjectedSpans {
    /// Downcasts the columns present in `batch`.
    pub(crate) fn new(batch: &RecordBatch) -> Result<Self> {
        let present = |name: &str| batch.column_by_name(name).is_some();
        Ok(ProjectedSpans {
            trace_id: fixed(batch, "trace_id")?,
            start: column(batch, "start")?
                .as_primitive_opt::<TimestampNanosecondType>()
                .cloned()
                .ok_or_else(|| wrong("start"))?,
            service: present("service")
                .then(|| utf8(batch, "service"))
                .transpose()?,
            name: present("name").then(|| utf8(batch, "name")).transpose()?,
            duration: present("duration_ns")
                .then(|| {
                    column(batch, "duration_ns")?
                        .as_primitive_opt::<Int64Type>()
                        .cloned()
                        .ok_or_else(|| wrong("duration_ns"))
                })
                .transpose()?,
            status: present("status_code")
                .then(|| {
                    column(batch, "status_code")?
                        .as_primitive_opt::<Int32Type>()
                        .cloned()
                        .ok_or_else(|| wrong("status_code"))
                })
                .transpose()?,
            attributes: present("attributes")
                .then(|| map(batch, "attributes"))
                .transpose()?,
            resource: present("resource")
                .then(|| map(batch, "resource"))
                .transpose()?,
            events: present("events")
                .then(|| utf8(batch, "events"))
                .transpose()?,
        })
    }

    /// Number of spans.
    pub(crate) fn len(&self) -> usize {
        self.trace_id.len()
    }

    /// The span at `row`.
    pub(crate) fn span(&self, row: usize) -> ProjectedSpan<'_> {
        ProjectedSpan { batch: self, row }
    }
}

/// One span inside a [`ProjectedSpans`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProjectedSpan<'a> {
    batch: &'a ProjectedSpans,
    row: usize,
}

impl ProjectedSpan<'_> {
    /// The trace id.
    pub(crate) fn trace_id(&self) -> TraceId {
        TraceId::from_slice(self.batch.trace_id.value(self.row)).unwrap_or_default()
    }

    /// Start, Unix nanoseconds.
    pub(crate) fn start_ns(&self) -> i64 {
        self.batch.start.value(self.row)
    }
}

impl<'a> SearchFields<'a> for ProjectedSpan<'a> {
    fn service(&self) -> &'a str {
        self.batch
            .service
            .as_ref()
            .map_or("", |c| c.value(self.row))
    }
    fn name(&self) -> &'a str {
        self.batch.name.as_ref().map_or("", |c| c.value(self.row))
    }
    fn duration_ns(&self) -> i64 {
        self.batch
            .duration
            .as_ref()
            .map_or(0, |c| c.value(self.row))
    }
    fn is_error(&self) -> bool {
        self.batch
            .status
            .as_ref()
            .is_some_and(|c| c.value(self.row) == 2)
    }
    fn attribute(&self, key: &str) -> Option<&'a str> {
        let map = self.batch.attributes.as_ref()?;
        map_entries(map, self.row)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
    fn resource_attribute(&self, key: &str) -> Option<&'a str> {
        let map = self.batch.resource.as_ref()?;
        map_entries(map, self.row)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
    fn events_json(&self) -> Option<&'a str> {
        optional(self.batch.events.as_ref()?, self.row)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A span for unit tests.
    pub(crate) fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        name: &str,
        start_ns: i64,
        duration_ns: i64,
    ) -> SpanRecord {
        let mut resource = Attributes::new();
        resource.insert("service.name".to_string(), service.to_string());
        SpanRecord {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.to_string(),
            name: name.to_string(),
            kind: "server".to_string(),
            start_ns,
            duration_ns,
            resource,
            ..SpanRecord::default()
        }
    }

    /// Builds one batch of `spans`.
    pub(crate) fn batch(spans: &[SpanRecord]) -> SpanBatch {
        let batch = storage::model::spans_batch(spans).expect("batch");
        SpanBatch::new(&batch).expect("columns")
    }

    #[test]
    fn record_round_trips_through_a_batch() {
        let mut record = span(1, 2, Some(3), "api", "GET /", 10, 5);
        record.attributes.insert("k".into(), "v".into());
        record.status_code = 2;
        record.peer_service = Some("db".into());
        record.events = Some("[]".into());
        let batch = batch(std::slice::from_ref(&record));
        let span = batch.span(0);
        assert_eq!(span.attribute("k"), Some("v"));
        assert_eq!(span.resource_attribute("service.name"), Some("api"));
        assert!(span.is_error());
        assert_eq!(span.to_record(), record);
    }
}
