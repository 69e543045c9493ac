//! What `--metrics` answers: `GET /metrics` (Prometheus text) and `GET /healthz`, as a
//! handler of the HTTP core. The server runs it with one of its own models on the metrics
//! listener, so the endpoint speaks the same HTTP as the site: same parser, same limits, same
//! answers to bad requests and other methods.

use super::metrics::Metrics;
use crate::http::{Body, Handler, Reply, Request, Status};
use std::borrow::Cow;
use std::sync::Arc;

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// Answers `/metrics` and `/healthz`; anything else is not found.
#[derive(Debug)]
pub(crate) struct MetricsHandler {
    metrics: Arc<Metrics>,
}

impl MetricsHandler {
    pub fn new(metrics: Arc<Metrics>) -> MetricsHandler {
        MetricsHandler { metrics }
    }
}

impl Handler for MetricsHandler {
    fn handle(&self, request: &Request<'_>) -> Reply {
        match request.path {
            b"/metrics" => {
                let text = self.metrics.render().into_bytes();
                Reply::ok(Cow::Borrowed(PROMETHEUS_TEXT), Body::Shared(text.into()))
            }
            b"/healthz" => Reply::ok(Cow::Borrowed(PLAIN_TEXT), Body::Static(b"ok\n")),
            _ => Reply::error(Status::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::with_request;
    use std::time::Instant;

    fn answer(handler: &MetricsHandler, raw: &str) -> Reply {
        with_request(raw.as_bytes(), Instant::now(), |request| handler.handle(request))
    }

    fn body(reply: &Reply) -> &[u8] {
        match &reply.body {
            Body::Static(bytes) => bytes,
            Body::Shared(bytes) => bytes,
            Body::File { .. } => panic!("no file here"),
        }
    }

    #[test]
    fn answers_metrics_healthz_and_nothing_else() {
        let metrics = Metrics::new("thread").unwrap();
        metrics.accepted();
        let handler = MetricsHandler::new(metrics);
        let scrape = answer(&handler, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(scrape.status, Status::Ok);
        assert_eq!(scrape.content_type.as_deref(), Some(PROMETHEUS_TEXT));
        let text = String::from_utf8_lossy(body(&scrape)).into_owned();
        assert!(
            text.contains("bingfa_connections_accepted_total{model=\"thread\"} 1\n"),
            "{text}"
        );
        let health = answer(&handler, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((health.status, body(&health)), (Status::Ok, &b"ok\n"[..]));
        let other = answer(&handler, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(other.status, Status::NotFound);
    }
}
