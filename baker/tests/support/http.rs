//! A tiny real HTTP/1.1 server on loopback for fetch tests: serves byte bodies by path and
//! can fail the first N requests (503), cut a body short, or serve a 404.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Route {
    pub body: Vec<u8>,
    /// Answer this many requests with 503 first.
    pub fail_first: usize,
    /// Announce the full length but close after this many bytes, this many times.
    pub cut_first: usize,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
}

pub struct Server {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Self { base, state }
    }

    pub fn route(&self, path: &str, route: Route) -> String {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), route);
        format!("{}{path}", self.base)
    }

    pub fn serve_bytes(&self, path: &str, body: &[u8]) -> String {
        self.route(
            path,
            Route {
                body: body.to_vec(),
                ..Route::default()
            },
        )
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let (status, body, cut) = {
        let mut st = state.lock().unwrap();
        *st.hits.entry(path.clone()).or_default() += 1;
        match st.routes.get_mut(&path) {
            None => ("404 Not Found", b"not found".to_vec(), None),
            Some(r) if r.fail_first > 0 => {
                r.fail_first -= 1;
                ("503 Service Unavailable", b"busy".to_vec(), None)
            }
            Some(r) if r.cut_first > 0 => {
                r.cut_first -= 1;
                ("200 OK", r.body.clone(), Some(r.body.len() / 2))
            }
            Some(r) => ("200 OK", r.body.clone(), None),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body[..cut.unwrap_or(body.len())]);
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}
