//! The same client for code without an async runtime (the CPI: one process per call): each
//! call runs on a private current-thread tokio runtime.

use std::time::Duration;

use hyper::Method;

use crate::client::{Client as AsyncClient, ClientError, Credentials, Response};
use crate::types::{Outlet, PowerState};

pub struct Client {
    rt: tokio::runtime::Runtime,
    inner: AsyncClient,
}

impl Client {
    pub fn new(base: &str, credentials: Credentials) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Http {
                url: base.to_string(),
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        // hyper-util's client wants a runtime when it is built
        let inner = {
            let _guard = rt.enter();
            AsyncClient::new(base, credentials)?
        };
        Ok(Client { rt, inner })
    }

    pub fn base(&self) -> &str {
        self.inner.base()
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    pub fn outlets(&self) -> Result<Vec<Outlet>, ClientError> {
        self.rt.block_on(self.inner.outlets())
    }

    pub fn outlet(&self, id: &str) -> Result<Outlet, ClientError> {
        self.rt.block_on(self.inner.outlet(id))
    }

    pub fn set_power(&self, id: &str, state: PowerState) -> Result<Outlet, ClientError> {
        self.rt.block_on(self.inner.set_power(id, state))
    }

    pub fn cycle(&self, id: &str) -> Result<Outlet, ClientError> {
        self.rt.block_on(self.inner.cycle(id))
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        self.rt.block_on(self.inner.call(method, path, body))
    }
}
