//! OTLP/gRPC: the collector `TraceService`, `MetricsService` and `LogsService`,
//! adapting tonic requests to the same conversion as OTLP/HTTP.

use std::future::Future;

use proto::TenantId;
use proto::otlp::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse, ExportTraceServiceRequest, ExportTraceServiceResponse,
    LogsService, LogsServiceServer, MetricsService, MetricsServiceServer, TraceService,
    TraceServiceServer,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::{Error, IngestService, Protocol, body};

/// The three OTLP collector services over one [`IngestService`].
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    service: IngestService,
}

impl OtlpGrpc {
    /// Wraps the ingest service.
    pub fn new(service: IngestService) -> Self {
        OtlpGrpc { service }
    }

    fn tenant<T>(&self, request: &Request<T>) -> Result<TenantId, Status> {
        // Metadata keys are lowercase; `HeaderMap` lookups by the configured name ignore case.
        let headers = request.metadata().clone().into_headers();
        body::tenant(&headers, self.service.config()).map_err(|e| status(&e))
    }
}

/// The gRPC status of an ingest error (`INVALID_ARGUMENT`, `UNAVAILABLE`…).
pub fn status(error: &Error) -> Status {
    let code = tonic::Code::from_i32(error.code().grpc_code());
    if code == tonic::Code::Internal {
        tracing::error!(error = ?error, "otlp grpc export failed");
    }
    Status::new(code, error.client_message())
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = self.tenant(&request)?;
        super::traces::export(
            &self.service,
            Protocol::OtlpGrpc,
            &tenant,
            request.into_inner(),
        )
        .await
        .map(Response::new)
        .map_err(|e| status(&e))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let tenant = self.tenant(&request)?;
        super::metrics::export(
            &self.service,
            Protocol::OtlpGrpc,
            &tenant,
            request.into_inner(),
        )
        .await
        .map(Response::new)
        .map_err(|e| status(&e))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let tenant = self.tenant(&request)?;
        super::logs::export(
            &self.service,
            Protocol::OtlpGrpc,
            &tenant,
            request.into_inner(),
        )
        .await
        .map(Response::new)
        .map_err(|e| status(&e))
    }
}

/// Serves the three services on `listener` (gzip and zstd accepted, messages up to
/// `ingest.max_request_size`) until `shutdown` resolves, then lets in-flight calls finish.
pub async fn serve(
    service: IngestService,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limit = usize::try_from(service.config().max_request_size.bytes()).unwrap_or(usize::MAX);
    let otlp = OtlpGrpc::new(service);
    let traces = TraceServiceServer::new(otlp.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(otlp.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(otlp)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    Server::builder()
        .add_service(traces)
        .add_service(metrics)
        .add_service(logs)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(std::io::Error::other)
}
