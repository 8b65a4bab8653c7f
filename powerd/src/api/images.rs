//! `/v1/images`: stemcell images, uploaded as a stream.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, response::IntoResponse};
use powerd_client::codes;
use powerd_client::provision::{Image, ImageList, ImageUpload};

use super::v1::{Caller, Reader};
use super::{ApiError, AppState, provisioner};

pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/v1/images", get(list)),
        (Method::POST, "/v1/images", post(upload)),
        (Method::GET, "/v1/images/{id}", get(show)),
        (Method::DELETE, "/v1/images/{id}", delete(remove)),
    ]
}

async fn list(_: Reader, State(app): State<AppState>) -> Result<Json<ImageList>, ApiError> {
    Ok(Json(ImageList {
        images: provisioner(&app)?.images(),
    }))
}

async fn show(
    _: Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Image>, ApiError> {
    Ok(Json(provisioner(&app)?.image(&id)?))
}

async fn upload(
    _: Caller,
    State(app): State<AppState>,
    query: Result<Query<ImageUpload>, QueryRejection>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let p = provisioner(&app)?;
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_BODY,
            format!("query: {}", e.body_text()),
        )
    })?;
    let (image, created) = p.upload_image(q, body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(image)))
}

async fn remove(
    _: Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    provisioner(&app)?.delete_image(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
