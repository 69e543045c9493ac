//! What `--metrics` answers: `GET /metrics` (Prometheus text) and `GET /healthz`, as a
//! handler of the HTTP core. The server runs it with one of its own models on the metrics
//! listener, so the endpoint speaks the same HTTP as the site: same parser, same limits, same
//! answers to bad requests and other methods.
//!
//! `/healthz` is what a load balancer's health check asks: 200 `ok` while the server serves,
//! 503 `starting` before it does and 503 `draining` once it was asked to stop, so that the
//! balancer sends it no new clients while it finishes (see `--drain-delay`).

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
    /// Without one, `/healthz` says `ok` whenever it is asked.
    health: Option<Health>,
}

/// Where the server is, as `/healthz` says it: asked of the server at each request.
#[derive(Clone)]
pub struct Health(Arc<dyn Fn() -> Healthy + Send + Sync>);

impl Health {
    pub fn new(probe: impl Fn() -> Healthy + Send + Sync + 'static) -> Health {
        Health(Arc::new(probe))
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Health")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healthy {
    Starting,
    Ready,
    Draining,
}

impl MetricsHandler {
    pub fn new(metrics: Arc<Metrics>) -> MetricsHandler {
        MetricsHandler {
            metrics,
            health: None,
        }
    }

    /// `/healthz` answers what `health` says.
    pub fn with_health(self, health: Health) -> MetricsHandler {
        MetricsHandler {
            health: Some(health),
            ..self
        }
    }

    fn healthz(&self) -> Reply {
        let (status, body): (_, &'static [u8]) = match self.health.as_ref().map(|probe| (probe.0)()) {
            None | Some(Healthy::Ready) => (Status::Ok, b"ok\n"),
            Some(Healthy::Starting) => (Status::ServiceUnavailable, b"starting\n"),
            Some(Healthy::Draining) => (Status::ServiceUnavailable, b"draining\n"),
        };
        Reply {
            status,
            ..Reply::ok(Cow::Borrowed(PLAIN_TEXT), Body::Static(body))
        }
    }
}

impl Handler for MetricsHandler {
    fn handle(&self, request: &Request<'_>) -> Reply {
        match request.path {
            b"/metrics" => {
                let text = self.metrics.render().into_bytes();
                Reply::ok(Cow::Borrowed(PROMETHEUS_TEXT), Body::Shared(text.into()))
            }
            b"/healthz" => self.healthz(),
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
        let metrics = Metrics::with_certificates("thread", &[]).unwrap();
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

    #[test]
    fn healthz_says_503_while_starting_and_draining() {
        let cases = [
            (Healthy::Starting, Status::ServiceUnavailable, &b"starting\n"[..]),
            (Healthy::Ready, Status::Ok, &b"ok\n"[..]),
            (Healthy::Draining, Status::ServiceUnavailable, &b"draining\n"[..]),
        ];
        for (healthy, status, text) in cases {
            let handler = MetricsHandler::new(Metrics::with_certificates("thread", &[]).unwrap())
                .with_health(Health::new(move || healthy));
            let health = answer(&handler, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!((health.status, body(&health)), (status, text), "{healthy:?}");
        }
    }
}
