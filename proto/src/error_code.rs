/// The category of a failure, shared by every crate so that each edge (HTTP, gRPC)
/// maps errors to statuses in exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (HTTP 400).
    InvalidArgument,
    /// The request carries no valid credentials (HTTP 401).
    Unauthenticated,
    /// The credentials do not allow this request (HTTP 403).
    PermissionDenied,
    /// The named resource does not exist (HTTP 404).
    NotFound,
    /// The request body is larger than allowed (HTTP 413).
    PayloadTooLarge,
    /// The caller must slow down; retry after a delay (HTTP 429).
    TooManyRequests,
    /// The server cannot serve the request now (overloaded, starting, shutting down) (HTTP 503).
    Unavailable,
    /// The request ran past its deadline (HTTP 503 with a timeout body).
    Timeout,
    /// A bug or an unexpected I/O failure on our side (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// Returns the HTTP status code for this category.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unavailable | ErrorCode::Timeout => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// Returns the gRPC status code (as its numeric value) for this category.
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::InvalidArgument => 3,
            ErrorCode::Unauthenticated => 16,
            ErrorCode::PermissionDenied => 7,
            ErrorCode::NotFound => 5,
            ErrorCode::PayloadTooLarge | ErrorCode::TooManyRequests => 8,
            ErrorCode::Unavailable => 14,
            ErrorCode::Timeout => 4,
            ErrorCode::Internal => 13,
        }
    }

    /// Returns true when the client should retry later (and be sent `Retry-After`).
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::TooManyRequests | ErrorCode::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_map_to_429_or_503() {
        for code in [ErrorCode::TooManyRequests, ErrorCode::Unavailable] {
            assert!(code.is_retryable());
            assert!(matches!(code.http_status(), 429 | 503));
        }
        assert!(!ErrorCode::InvalidArgument.is_retryable());
        assert_eq!(ErrorCode::Internal.grpc_code(), 13);
    }
}
