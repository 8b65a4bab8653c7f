//! `/v1/pis`: the Pi inventory.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, response::IntoResponse};
use powerd_client::provision::{Pi, PiList, PiSpec, PiStateRequest};

use super::v1::{Caller, Reader};
use super::{ApiError, AppState, parse_json as parse_body, provisioner};

pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/v1/pis", get(list)),
        (Method::GET, "/v1/pis/{serial}", get(show)),
        (Method::PUT, "/v1/pis/{serial}", put(register)),
        (Method::DELETE, "/v1/pis/{serial}", delete(retire)),
        (Method::POST, "/v1/pis/{serial}/state", post(set_state)),
    ]
}

async fn list(_: Reader, State(app): State<AppState>) -> Result<Json<PiList>, ApiError> {
    Ok(Json(PiList {
        pis: provisioner(&app)?.pis(),
    }))
}

async fn show(
    _: Reader,
    State(app): State<AppState>,
    Path(serial): Path<String>,
) -> Result<Json<Pi>, ApiError> {
    Ok(Json(provisioner(&app)?.pi(&serial)?))
}

async fn register(
    _: Caller,
    State(app): State<AppState>,
    Path(serial): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let p = provisioner(&app)?;
    let spec: PiSpec = parse_body(&body)?;
    let (pi, created) = p.put_pi(&serial, spec)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(pi)))
}

async fn set_state(
    _: Caller,
    State(app): State<AppState>,
    Path(serial): Path<String>,
    body: Bytes,
) -> Result<Json<Pi>, ApiError> {
    let p = provisioner(&app)?;
    p.pi(&serial)?;
    let req: PiStateRequest = parse_body(&body)?;
    Ok(Json(p.set_pi_state(&serial, req.state)?))
}

async fn retire(
    _: Caller,
    State(app): State<AppState>,
    Path(serial): Path<String>,
) -> Result<StatusCode, ApiError> {
    provisioner(&app)?.retire_pi(&serial)?;
    Ok(StatusCode::NO_CONTENT)
}
