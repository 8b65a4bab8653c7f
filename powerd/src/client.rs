//! A small HTTP client for powerd's API (hyper over plain TCP), shared by `powerd ctl`, the
//! load generator and the tests.

use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an http:// URL")]
    BadUrl(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
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
    http: HyperClient<HttpConnector, Full<Bytes>>,
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
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| err(e.to_string()))?;
        let work = async {
            let resp = self.http.request(req).await.map_err(|e| err(chain(&e)))?;
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
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.clone(),
                timeout: self.timeout,
            })?
    }
}

/// hyper's errors say little at the top level; the cause says what happened.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
