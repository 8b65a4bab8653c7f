//! A small HTTP client for powerd's API (hyper over plain TCP), shared by `powerd ctl`, the
//! CPI, the load generator and the tests.

use std::time::Duration;

use base64::Engine;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::types::{ErrorBody, Outlet, OutletList, PowerRequest, PowerState};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an http:// URL")]
    BadUrl(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// powerd answered with an error (its stable `code` and one-line `message`).
    #[error("{base}: {status} {code}: {message}")]
    Api {
        base: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{url}: unexpected answer: {message}")]
    Decode { url: String, message: String },
    /// A local file to send could not be read.
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl ClientError {
    /// powerd's stable error code, when powerd answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when powerd answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: powerd unreachable, slow, or failing on its
    /// side (5xx). A refusal (4xx), a bad URL, an unreadable file or an answer this client
    /// cannot read will fail the same way again.
    pub fn retryable(&self) -> bool {
        match self {
            ClientError::Http { .. } | ClientError::Timeout { .. } => true,
            ClientError::Api { status, .. } => *status >= 500,
            ClientError::BadUrl(_) | ClientError::Decode { .. } | ClientError::File { .. } => false,
        }
    }

    /// powerd answered 404 with this code (a route that does not exist answers `not_found`,
    /// which is not the same as a missing VM or disk).
    pub fn is_not_found(&self, code: &str) -> bool {
        self.status() == Some(404) && self.code() == Some(code)
    }
}

/// A request body: bytes in memory or a stream (an image upload).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// How to authenticate a request.
#[derive(Debug, Clone)]
pub enum Credentials {
    None,
    Bearer(String),
    Basic {
        user: String,
        password: String,
    },
    /// A raw `Authorization` header value.
    Raw(String),
}

impl Credentials {
    fn header(&self) -> Option<String> {
        match self {
            Credentials::None => None,
            Credentials::Bearer(t) => Some(format!("Bearer {t}")),
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Credentials::Raw(v) => Some(v.clone()),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    credentials: Credentials,
    timeout: Duration,
    http: HyperClient<HttpConnector, Body>,
}

impl Client {
    pub fn new(base: &str, credentials: Credentials) -> Result<Client, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(ClientError::BadUrl(base));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Client {
            base,
            credentials,
            // a cycle waits min_off; leave room for long ones
            timeout: Duration::from_secs(300),
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// How long one call may take (default 300 s: a cycle waits the outlet's min_off).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET /v1/outlets`.
    pub async fn outlets(&self) -> Result<Vec<Outlet>, ClientError> {
        let list: OutletList = self.typed(Method::GET, "/v1/outlets", None).await?;
        Ok(list.outlets)
    }

    /// `GET /v1/outlets/{id}`.
    pub async fn outlet(&self, id: &str) -> Result<Outlet, ClientError> {
        self.typed(Method::GET, &format!("/v1/outlets/{id}"), None)
            .await
    }

    /// `PUT /v1/outlets/{id}/power`: waits for min_off and the stagger on power-on.
    pub async fn set_power(&self, id: &str, state: PowerState) -> Result<Outlet, ClientError> {
        let body = serde_json::to_value(PowerRequest { state }).expect("request serialises");
        self.typed(Method::PUT, &format!("/v1/outlets/{id}/power"), Some(&body))
            .await
    }

    /// `POST /v1/outlets/{id}/cycle`: off, wait min_off, on.
    pub async fn cycle(&self, id: &str) -> Result<Outlet, ClientError> {
        self.typed(Method::POST, &format!("/v1/outlets/{id}/cycle"), None)
            .await
    }

    /// A call whose success is a `T` and whose failure is powerd's error body.
    pub(crate) async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let resp = self.call(method, path, body).await?;
        self.decode(path, resp)
    }

    /// A call whose success carries nothing this client needs.
    pub(crate) async fn unit(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(), ClientError> {
        let resp = self.call(method, path, body).await?;
        self.check(resp).map(|_| ())
    }

    /// powerd's error body as a [`ClientError::Api`]; a success passes through.
    pub(crate) fn check(&self, resp: Response) -> Result<Response, ClientError> {
        if !resp.status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&resp.body) {
                Ok(e) => (e.error.code, e.error.message),
                Err(_) => (
                    "error".to_string(),
                    String::from_utf8_lossy(&resp.body).into_owned(),
                ),
            };
            return Err(ClientError::Api {
                base: self.base.clone(),
                status: resp.status.as_u16(),
                code,
                message,
            });
        }
        Ok(resp)
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        resp: Response,
    ) -> Result<T, ClientError> {
        let resp = self.check(resp)?;
        serde_json::from_slice(&resp.body).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        let body = body.map(|b| b.to_string().into_bytes());
        self.send(method, path, &self.credentials, body).await
    }

    /// Sends `body` (raw bytes, sent as JSON) with explicit credentials.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        credentials: &Credentials,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let content = body.map(|b| ("application/json", b.len() as u64, full(b)));
        self.send_body(method, path, credentials, content, self.timeout)
            .await
    }

    /// Sends a body of `(content type, length, bytes)`, waiting at most `timeout` for the
    /// whole exchange.
    pub(crate) async fn send_body(
        &self,
        method: Method,
        path: &str,
        credentials: &Credentials,
        body: Option<(&str, u64, Body)>,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let err = |message: String| ClientError::Http {
            url: url.clone(),
            message,
        };
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(h) = credentials.header() {
            req = req.header(
                AUTHORIZATION,
                HeaderValue::from_str(&h).map_err(|e| err(e.to_string()))?,
            );
        }
        let body = match body {
            Some((content_type, len, body)) => {
                req = req
                    .header(CONTENT_TYPE, content_type)
                    .header(CONTENT_LENGTH, len);
                body
            }
            None => full(Vec::new()),
        };
        let req = req.body(body).map_err(|e| err(e.to_string()))?;
        let work = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| err(pifoundry_util::error::chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_bytes();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.clone(),
                timeout,
            })?
    }
}
