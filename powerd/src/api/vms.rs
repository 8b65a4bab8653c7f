//! `/v1/vms`: a VM is a claimed Pi booted from an image; create and delete are all or nothing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, response::IntoResponse};
use powerd_client::provision::{CreateVm, Labels, Vm, VmList};

use super::v1::{Caller, Reader};
use super::{ApiError, AppState, parse_json as parse_body, provisioner};

pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/v1/vms", get(list)),
        (Method::POST, "/v1/vms", post(create)),
        (Method::GET, "/v1/vms/{id}", get(show)),
        (Method::DELETE, "/v1/vms/{id}", delete(remove)),
        (Method::POST, "/v1/vms/{id}/reboot", post(reboot)),
        (Method::PUT, "/v1/vms/{id}/metadata", put(metadata)),
    ]
}

async fn list(_: Reader, State(app): State<AppState>) -> Result<Json<VmList>, ApiError> {
    Ok(Json(VmList {
        vms: provisioner(&app)?.vms(),
    }))
}

async fn show(
    _: Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vm>, ApiError> {
    Ok(Json(provisioner(&app)?.vm(&id)?))
}

async fn create(
    Caller(who): Caller,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let p = provisioner(&app)?.clone();
    let req: CreateVm = parse_body(&body)?;
    // A client that hangs up must not leave a half-made VM: the creation runs to its end
    // (or its rollback) in its own task.
    let vm = tokio::spawn(async move { p.create_vm(req, &who).await })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "provision_failed",
                e.to_string(),
            )
        })??;
    Ok((StatusCode::CREATED, Json(vm)))
}

async fn remove(
    Caller(who): Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let p = provisioner(&app)?.clone();
    tokio::spawn(async move { p.delete_vm(&id, &who).await })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "provision_failed",
                e.to_string(),
            )
        })??;
    Ok(StatusCode::NO_CONTENT)
}

async fn reboot(
    Caller(who): Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vm>, ApiError> {
    Ok(Json(provisioner(&app)?.reboot_vm(&id, &who).await?))
}

async fn metadata(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Vm>, ApiError> {
    let p = provisioner(&app)?;
    p.vm(&id)?;
    let labels: Labels = parse_body(&body)?;
    Ok(Json(p.set_vm_metadata(&id, labels)?))
}
