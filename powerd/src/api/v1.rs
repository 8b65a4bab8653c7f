//! powerd's own API under `/v1`. The route table is the single source for both the router and
//! the OpenAPI check.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, get, post, put};
use axum::{Json, response::IntoResponse};
use powerd_client::{OutletList, PowerRequest};

use super::{ApiError, AppState, authenticate};
use crate::outlet::PowerState;
use crate::power::{Action, OutletView};

/// A caller allowed to change power (always authenticated).
pub struct Caller(pub String);

/// A caller allowed to read (authenticated unless reads are open).
pub struct Reader;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let who = authenticate(app, parts, true)?;
        Ok(Caller(who.expect("mutations are always authenticated")))
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        authenticate(app, parts, false)?;
        Ok(Reader)
    }
}

/// Every `/v1` route: method, path (axum syntax, which is also OpenAPI's), handler.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/v1/outlets", get(list)),
        (Method::GET, "/v1/outlets/{id}", get(show)),
        (Method::PUT, "/v1/outlets/{id}/power", put(set_power)),
        (Method::POST, "/v1/outlets/{id}/cycle", post(cycle)),
    ]
    .into_iter()
    .chain(super::pis::routes())
    .chain(super::images::routes())
    .chain(super::vms::routes())
    .chain(super::disks::routes())
    .collect()
}

pub fn router() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
}

async fn list(_: Reader, State(app): State<AppState>) -> Json<OutletList> {
    Json(OutletList {
        outlets: app.power.list(),
    })
}

async fn show(
    _: Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OutletView>, ApiError> {
    app.power
        .get(&id)
        .map(Json)
        .ok_or_else(|| crate::power::PowerError::UnknownOutlet(id).into())
}

/// Parses a JSON body ourselves, so that every mistake gets the same error shape and code.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_body("the body is empty"));
    }
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

async fn set_power(
    Caller(who): Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // Unknown outlet first: a 404 is more useful than a complaint about the body.
    app.power
        .get(&id)
        .ok_or_else(|| crate::power::PowerError::UnknownOutlet(id.clone()))?;
    let req: PowerRequest = parse_body(&body)?;
    let action = match req.state {
        PowerState::On => Action::On,
        PowerState::Off => Action::Off,
    };
    Ok(Json(app.power.apply(&id, action, &who).await?))
}

async fn cycle(
    Caller(who): Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OutletView>, ApiError> {
    Ok(Json(app.power.apply(&id, Action::Cycle, &who).await?))
}
