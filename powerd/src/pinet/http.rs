//! The Pi network's HTTP server: bosh-agent's `HTTP` settings source and the attach helper's
//! API. The source address is the identity: each Pi gets only its own VM's data, every other
//! source, path and method a bare 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use powerd_client::provision::Confirm;
use serde::Deserialize;

use super::{Directory, Hub, PiVm};

/// Largest request body read (a Confirm is a few dozen bytes).
const MAX_BODY: usize = 16 * 1024;

#[derive(Clone)]
struct Pinet {
    dir: Arc<dyn Directory>,
    hub: Arc<Hub>,
}

pub fn router(dir: Arc<dyn Directory>, hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/latest/user-data", get(user_data))
        .route("/latest/meta-data/instance-id", get(instance_id))
        .route("/latest/meta-data/public-keys/0/openssh-key", get(ssh_key))
        .route("/pifoundry/v1/attachments", get(attachments))
        .route("/pifoundry/v1/attachments/{disk}", post(confirm))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(Pinet { dir, hub })
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

impl Pinet {
    fn vm(&self, peer: SocketAddr) -> Option<PiVm> {
        self.dir.vm_at(peer.ip().to_canonical())
    }
}

fn text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn user_data(State(p): State<Pinet>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    match p.vm(peer) {
        Some(vm) => axum::Json(vm.settings).into_response(),
        None => not_found().await,
    }
}

async fn instance_id(
    State(p): State<Pinet>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    match p.vm(peer) {
        Some(vm) => text(vm.vm_id),
        None => not_found().await,
    }
}

async fn ssh_key(State(p): State<Pinet>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    match p.vm(peer).and_then(|vm| vm.ssh_key) {
        Some(key) => text(format!("{}\n", key.trim_end())),
        None => not_found().await,
    }
}

#[derive(Deserialize)]
struct PollQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait: u64,
}

async fn attachments(
    State(p): State<Pinet>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(vm) = p.vm(peer) else {
        return not_found().await;
    };
    let Ok(Query(q)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            "after and wait are whole numbers\n",
        )
            .into_response();
    };
    let now = p
        .hub
        .poll(&vm.serial, q.after, Duration::from_secs(q.wait))
        .await;
    axum::Json(now).into_response()
}

async fn confirm(
    State(p): State<Pinet>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(disk): Path<String>,
    body: Bytes,
) -> Response {
    let Some(vm) = p.vm(peer) else {
        return not_found().await;
    };
    let confirm: Confirm = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid Confirm body: {e}\n"),
            )
                .into_response();
        }
    };
    match p.hub.confirm(&vm.serial, &disk, confirm) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => not_found().await,
    }
}
