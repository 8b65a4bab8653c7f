//! The HTTP API: `/v1` (powerd's own JSON), the Redfish subset, `/healthz`, `/metrics` and
//! `/openapi.json`. Handlers are plain async functions over [`AppState`].

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::auth::{Auth, CHALLENGES, Denied};
use crate::metrics::{Metrics, RouteLabels};
use crate::outlet::sim::SimLog;
use crate::power::{Power, PowerError};
use crate::provision::{ProvisionError, Provisioner};

pub mod disks;
pub mod images;
pub mod openapi;
mod openapi_prov;
pub mod pis;
pub mod redfish;
pub mod v1;
pub mod vms;

pub struct App {
    pub power: Arc<Power>,
    /// Absent without a `provisioning:` section.
    pub provision: Option<Arc<Provisioner>>,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    /// The sim outlets' transition log (empty unless sim outlets are configured).
    pub sim: Arc<SimLog>,
}

pub type AppState = Arc<App>;

/// An error as powerd's own API reports it: an HTTP status, a stable machine-readable code
/// and a one-line message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Marks a response as an error with this code, for the error counter.
#[derive(Debug, Clone, Copy)]
struct ErrorCode(&'static str);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_body(message: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid JSON body: {message}"),
        )
    }

    fn into_response_with(self, body: serde_json::Value) -> Response {
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            for c in CHALLENGES {
                resp.headers_mut()
                    .append(WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
        }
        resp.extensions_mut().insert(ErrorCode(self.code));
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = powerd_client::ErrorBody::new(self.code, self.message.clone());
        let body = serde_json::to_value(body).expect("error body serialises");
        self.into_response_with(body)
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", d.to_string())
    }
}

impl From<PowerError> for ApiError {
    fn from(e: PowerError) -> Self {
        let (status, code) = match &e {
            PowerError::UnknownOutlet(_) => (StatusCode::NOT_FOUND, "outlet_not_found"),
            PowerError::Backend { .. } => (StatusCode::BAD_GATEWAY, "backend_failed"),
            PowerError::State { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "state_not_saved"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        let (status, code) = e.status_code();
        ApiError::new(status, code, e.to_string())
    }
}

/// Parses a provisioning body like [`v1::parse_body`], reading integral numbers written as
/// floats (`5.0`, which JSON Schema calls an integer) as integers.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &axum::body::Bytes) -> Result<T, ApiError> {
    let mut v: serde_json::Value = v1::parse_body(body)?;
    integral(&mut v);
    serde_json::from_value(v).map_err(ApiError::bad_body)
}

fn integral(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_u64() && !n.is_i64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *v = if f >= 0.0 {
                    (f as u64).into()
                } else {
                    (f as i64).into()
                };
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral),
        Value::Object(o) => o.values_mut().for_each(integral),
        _ => {}
    }
}

/// The provisioner, or 404 `provisioning_disabled` on a power-only powerd.
pub fn provisioner(app: &App) -> Result<&Arc<Provisioner>, ApiError> {
    app.provision.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            powerd_client::codes::PROVISIONING_DISABLED,
            "provisioning is not configured (no provisioning: section in powerd.yml)",
        )
    })
}

/// Authenticates a request: mutations always need a token; reads only unless `open_reads`.
/// Returns who is calling (`None` for an anonymous read).
pub fn authenticate(app: &App, parts: &Parts, mutation: bool) -> Result<Option<String>, Denied> {
    let header = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    if !mutation && app.auth.open_reads() && header.is_none() {
        return Ok(None);
    }
    app.auth.check(header).map(Some)
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(v1::router())
        .merge(redfish::router())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"status": "ok"}))
}

async fn metrics(_: v1::Reader, State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

async fn openapi(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document(app.auth.open_reads()))
}

async fn not_found(uri: Uri) -> Response {
    let e = ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such resource: {}", uri.path()),
    );
    if uri.path().starts_with("/redfish") {
        redfish::RedfishError(e).into_response()
    } else {
        e.into_response()
    }
}

async fn method_not_allowed(uri: Uri) -> Response {
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not support this method", uri.path()),
    );
    if uri.path().starts_with("/redfish") {
        redfish::RedfishError(e).into_response()
    } else {
        e.into_response()
    }
}

/// Records latency per route and counts error responses by code.
async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    app.metrics
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    if let Some(ErrorCode(code)) = resp.extensions().get::<ErrorCode>() {
        app.metrics.error(code);
    }
    resp
}
