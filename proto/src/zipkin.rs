//! Zipkin v2 proto3 wire messages (`zipkin.proto`, package `zipkin.proto3`).
//!
//! Field numbers follow openzipkin/zipkin-api `zipkin.proto` (PROTOCOLS.md §4.2).

use std::collections::HashMap;

/// A batch of spans: the body of `POST /api/v2/spans` with `application/x-protobuf`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOfSpans {
    /// The spans.
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
}

/// One span.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 8 or 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes, empty on a root span.
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    /// The span kind.
    #[prost(enumeration = "Kind", tag = "4")]
    pub kind: i32,
    /// The operation name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// Start, epoch microseconds.
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    /// Duration, microseconds.
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    /// The host that recorded the span.
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<Endpoint>,
    /// The other side of an RPC or message.
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<Endpoint>,
    /// Timestamped events.
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<Annotation>,
    /// String tags.
    #[prost(map = "string, string", tag = "11")]
    pub tags: HashMap<String, String>,
    /// Forced sampling.
    #[prost(bool, tag = "12")]
    pub debug: bool,
    /// The server half of a span id shared with its client.
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

/// The span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    /// Absent.
    SpanKindUnspecified = 0,
    /// An outgoing request.
    Client = 1,
    /// An incoming request.
    Server = 2,
    /// A message sent.
    Producer = 3,
    /// A message received.
    Consumer = 4,
}

/// A network endpoint.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Endpoint {
    /// Lower-case service name.
    #[prost(string, tag = "1")]
    pub service_name: String,
    /// 4 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    /// The port, 0 when unknown.
    #[prost(int32, tag = "4")]
    pub port: i32,
}

/// A timestamped event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Annotation {
    /// Epoch microseconds.
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    /// The event.
    #[prost(string, tag = "2")]
    pub value: String,
}
