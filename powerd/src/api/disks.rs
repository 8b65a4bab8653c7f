//! `/v1/disks`: persistent disks; attach answers only once the Pi confirmed the device.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, response::IntoResponse};
use powerd_client::codes;
use powerd_client::provision::{Attachment, CreateDisk, Disk, DiskList, Labels, ResizeDisk};
use serde::Deserialize;

use super::v1::{Caller, Reader};
use super::{ApiError, AppState, parse_json as parse_body, provisioner};

pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/v1/disks", get(list)),
        (Method::POST, "/v1/disks", post(create)),
        (Method::GET, "/v1/disks/{id}", get(show)),
        (Method::DELETE, "/v1/disks/{id}", delete(remove)),
        (Method::POST, "/v1/disks/{id}/attach", post(attach)),
        (Method::POST, "/v1/disks/{id}/detach", post(detach)),
        (Method::POST, "/v1/disks/{id}/resize", post(resize)),
        (Method::PUT, "/v1/disks/{id}/metadata", put(metadata)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    vm: Option<String>,
}

/// The body of `POST /v1/disks/{id}/attach`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachBody {
    vm: String,
}

async fn list(
    _: Reader,
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DiskList>, ApiError> {
    let p = provisioner(&app)?;
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_BODY,
            format!("query: {}", e.body_text()),
        )
    })?;
    Ok(Json(DiskList {
        disks: p.disks(q.vm.as_deref()),
    }))
}

async fn show(
    _: Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Disk>, ApiError> {
    Ok(Json(provisioner(&app)?.disk(&id)?))
}

async fn create(
    _: Caller,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let p = provisioner(&app)?;
    let req: CreateDisk = parse_body(&body)?;
    Ok((StatusCode::CREATED, Json(p.create_disk(req).await?)))
}

async fn remove(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    provisioner(&app)?.delete_disk(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn attach(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Attachment>, ApiError> {
    let p = provisioner(&app)?.clone();
    p.disk(&id)?;
    let req: AttachBody = parse_body(&body)?;
    // runs to its end (or rollback) even if the client hangs up
    let a = tokio::spawn(async move { p.attach_disk(&id, &req.vm).await })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "provision_failed",
                e.to_string(),
            )
        })??;
    Ok(Json(a))
}

async fn detach(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Disk>, ApiError> {
    let p = provisioner(&app)?.clone();
    let d = tokio::spawn(async move { p.detach_disk(&id).await })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "provision_failed",
                e.to_string(),
            )
        })??;
    Ok(Json(d))
}

async fn resize(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Disk>, ApiError> {
    let p = provisioner(&app)?;
    p.disk(&id)?;
    let req: ResizeDisk = parse_body(&body)?;
    Ok(Json(p.resize_disk(&id, req.size_mib).await?))
}

async fn metadata(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Disk>, ApiError> {
    let p = provisioner(&app)?;
    p.disk(&id)?;
    let labels: Labels = parse_body(&body)?;
    Ok(Json(p.set_disk_metadata(&id, labels)?))
}
