//! Prometheus metrics served at `/metrics`: transitions, errors by stable code, commanded
//! state per outlet and request latency per route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub outlet: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutletLabels {
    pub outlet: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub transitions: Family<TransitionLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub outlet_on: Family<OutletLabels, Gauge>,
    pub latency: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("powerd");
        let transitions = Family::<TransitionLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let outlet_on = Family::<OutletLabels, Gauge>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "transitions",
            "Power transitions made, by outlet and new state",
            transitions.clone(),
        );
        registry.register(
            "errors",
            "Requests and actions that failed, by stable error code",
            errors.clone(),
        );
        registry.register(
            "outlet_on",
            "Commanded state of each outlet (1 = on)",
            outlet_on.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        Metrics {
            registry,
            transitions,
            errors,
            outlet_on,
            latency,
        }
    }
}

impl Metrics {
    pub fn error(&self, code: &str) {
        self.errors
            .get_or_create(&ErrorLabels { code: code.into() })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
