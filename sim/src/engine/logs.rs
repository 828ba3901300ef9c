//! The log lines of a handler: Spring-Boot/logback style messages at INFO, WARN on
//! client errors, ERROR with the exception on failures.

use rand::Rng as _;

use super::{Engine, Exception, Level, SimLog};
use crate::fleet::{Entry, Handler};

impl Engine {
    pub(super) fn thread(&mut self) -> String {
        format!("http-nio-8080-exec-{}", self.rng.random_range(1..=200))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn log_handler(
        &mut self,
        handler: &Handler,
        name: &str,
        service: usize,
        replica: usize,
        trace_id: [u8; 16],
        span_id: [u8; 8],
        end_us: i64,
        duration_us: i64,
        status: u16,
        error: Option<&Exception>,
    ) {
        let thread = match handler.entry {
            Entry::Http { .. } => self.thread(),
            Entry::Consumer { .. } => format!(
                "org.springframework.amqp.rabbit.RabbitListenerEndpointContainer#0-{}",
                self.rng.random_range(1..=4)
            ),
            Entry::Scheduled { .. } => {
                format!("xxl-job, JobThread-{}", self.rng.random_range(1..=20))
            }
        };
        let elapsed_ms = duration_us / 1000;
        let (level, message) = match (error, status) {
            (Some(exception), _) => (
                Level::Error,
                match handler.entry {
                    Entry::Consumer { queue } => format!(
                        "Listener failed on queue {queue}, message will be requeued: {}: {}",
                        exception.class, exception.message
                    ),
                    _ => format!(
                        "Servlet.service() for servlet [dispatcherServlet] threw exception [Request processing failed; nested exception is {}: {}] with root cause",
                        exception.class, exception.message
                    ),
                },
            ),
            (None, 400..=499) => (
                Level::Warn,
                format!("{name} rejected status={status} elapsed={elapsed_ms}ms: invalid_token"),
            ),
            (None, _) => (
                Level::Info,
                match handler.entry {
                    Entry::Consumer { queue } => {
                        format!("Consumed message from {queue} in {elapsed_ms}ms")
                    }
                    Entry::Scheduled { task } => format!("{task} finished in {elapsed_ms}ms"),
                    Entry::Http { .. } => {
                        format!("{name} completed status={status} elapsed={elapsed_ms}ms")
                    }
                },
            ),
        };
        self.logs.push(SimLog {
            time_us: end_us,
            service,
            replica,
            level,
            logger: handler.logger(),
            thread,
            message,
            trace_id: Some(trace_id),
            span_id: Some(span_id),
            exception: error.cloned(),
        });
    }
}
