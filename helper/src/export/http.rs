//! The exporter's HTTP/1.1 server (hyper): `GET /metrics` and a landing page, nothing else.
//!
//! Bounds: at most [`Limits::max_connections`] connections are served at once (more wait in the
//! kernel's accept queue); request headers over 16 KiB are refused with 431 and slow headers
//! after [`Limits::header_timeout`]; a request that carries a body is refused with 413; a
//! connection lives at most [`Limits::connection_lifetime`]. Every response body is the tick's
//! shared encoding (reference-counted), so concurrent scrapes do not copy it.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{Semaphore, watch},
};

use super::metrics::{Exposition, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// The default address: loopback only. Port 9464 is also the default of OpenTelemetry's
/// Prometheus exporters: where one runs, set another (`--listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Where the exporter listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix socket (for a TLS / authenticating reverse proxy on the same machine).
    Unix(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "invalid listen address {0:?}: expected IP:PORT (127.0.0.1:9464, [::1]:9464, \
         0.0.0.0:9464) or unix:/absolute/path"
    )]
    BadAddress(String),
    #[error("cannot listen on {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {0}: another process is serving it")]
    InUse(String),
    #[error("cannot listen on {0}: the path exists and is not a socket")]
    NotASocket(String),
}

impl FromStr for Listen {
    type Err = HttpError;

    fn from_str(s: &str) -> Result<Listen, HttpError> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = Path::new(path);
            if !path.is_absolute() || path.file_name().is_none() {
                return Err(HttpError::BadAddress(s.to_owned()));
            }
            return Ok(Listen::Unix(path.to_owned()));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| HttpError::BadAddress(s.to_owned()))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "http://{addr}/metrics"),
            Listen::Unix(path) => write!(f, "unix:{} (GET /metrics)", path.display()),
        }
    }
}

/// A bound listener (bound before anything else starts, so a taken port fails at once).
#[derive(Debug)]
pub enum Bound {
    Tcp(std::net::TcpListener),
    /// Removed from the file system when dropped.
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl Listen {
    pub fn bind(&self) -> Result<Bound, HttpError> {
        let bind_err = |source| HttpError::Bind {
            what: self.to_string(),
            source,
        };
        match self {
            Listen::Tcp(addr) => {
                let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
                listener.set_nonblocking(true).map_err(bind_err)?;
                Ok(Bound::Tcp(listener))
            }
            Listen::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if !meta.file_type().is_socket() {
                        return Err(HttpError::NotASocket(path.display().to_string()));
                    }
                    // A socket nobody answers on is a stale one from an earlier run.
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        return Err(HttpError::InUse(path.display().to_string()));
                    }
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_err)?;
                // Owner and group: a proxy joins the socket's group to scrape it.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                    .map_err(bind_err)?;
                listener.set_nonblocking(true).map_err(bind_err)?;
                Ok(Bound::Unix(listener, path.clone()))
            }
        }
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Bound::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The server's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(300),
        }
    }
}

/// Request headers larger than this are refused (431).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The latest exposition (`None` before the first collection).
pub type Latest = watch::Receiver<Option<Exposition>>;

/// Serves until `shutdown` completes; then stops accepting (connections in flight are dropped).
pub async fn serve(
    bound: Bound,
    latest: Latest,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HttpError> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let bind_err = |source| HttpError::Bind {
        what: "the bound socket".to_owned(),
        source,
    };
    enum Listener {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    // `bound` stays alive (and the socket file with it) until this function returns.
    let listener = match &bound {
        Bound::Tcp(l) => Listener::Tcp(
            tokio::net::TcpListener::from_std(l.try_clone().map_err(bind_err)?)
                .map_err(bind_err)?,
        ),
        Bound::Unix(l, _) => Listener::Unix(
            tokio::net::UnixListener::from_std(l.try_clone().map_err(bind_err)?)
                .map_err(bind_err)?,
        ),
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                        spawn_connection(s, latest.clone(), limits, permit);
                    }),
                    Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                        spawn_connection(s, latest.clone(), limits, permit);
                    }),
                }
            } => accepted,
            () = &mut shutdown => break,
        };
        if let Err(err) = accepted {
            // Out of descriptors or memory: wait a little rather than spin.
            log::warn!("accept failed: {err}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(bound);
    Ok(())
}

fn spawn_connection<S>(
    stream: S,
    latest: Latest,
    limits: Limits,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| {
            let latest = latest.clone();
            async move { Ok::<_, Infallible>(respond(&req, &latest)) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_HEADER_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        // A connection past its lifetime is simply closed (Prometheus reconnects).
        if let Ok(Err(err)) = tokio::time::timeout(limits.connection_lifetime, connection).await {
            log::debug!("connection ended: {err}");
        }
        drop(permit);
    });
}

const LANDING: &str = "<!DOCTYPE html>\n<html><head><title>Memory Monitor exporter</title></head>\
<body><h1>Memory Monitor exporter</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

/// The answer to one request (pure: the unit tests call it directly).
pub fn respond<B>(req: &Request<B>, latest: &Latest) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    if has_body(req) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a scrape carries no request body\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let Some(exposition) = latest.borrow().clone() else {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the first collection has not finished yet\n",
                );
            };
            let (body, content_type) = if wants_openmetrics(req) {
                (exposition.openmetrics, OPENMETRICS_CONTENT_TYPE)
            } else {
                (exposition.text, TEXT_CONTENT_TYPE)
            };
            let gzip = body.gzip.filter(|_| accepts_gzip(req));
            let gzipped = gzip.is_some();
            let mut res = Response::new(Full::new(gzip.unwrap_or(body.plain)));
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            if gzipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            res
        }
        "/" => {
            let mut res = Response::new(Full::new(Bytes::from_static(LANDING.as_bytes())));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            res
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        ),
    }
}

/// A request with a non-empty body (`Content-Length` above 0, or any `Transfer-Encoding`).
fn has_body<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0))
}

/// Prometheus asks for OpenMetrics first in its `Accept` header; everything else (curl, older
/// scrapers) gets the classic text format.
fn wants_openmetrics<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let mut parts = media.split(';').map(str::trim);
            let is_openmetrics = parts.next() == Some("application/openmetrics-text");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            is_openmetrics && !refused
        })
}

/// `Accept-Encoding` lists gzip (or `*`) without `q=0` (Prometheus sends `gzip`).
fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A short text answer that closes the connection (an error: the client may be misbehaving).
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status != StatusCode::OK {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::super::metrics::Body;
    use super::*;

    fn exposition() -> Exposition {
        Exposition {
            openmetrics: Body::new("om\n# EOF\n".to_owned()),
            text: Body::new("text\n".to_owned()),
        }
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::builder().method(Method::GET).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).expect("request")
    }

    fn body(res: Response<Full<Bytes>>) -> (StatusCode, String) {
        use http_body_util::BodyExt as _;
        let status = res.status();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = rt
            .block_on(res.into_body().collect())
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn routes_and_negotiates() {
        let (_tx, rx) = watch::channel(Some(exposition()));
        assert_eq!(
            body(respond(&get("/metrics", &[]), &rx)),
            (StatusCode::OK, "text\n".into())
        );
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let res = respond(&get("/metrics?x=1", &[("accept", prometheus)]), &rx);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );
        assert_eq!(body(res).1, "om\n# EOF\n");
        let refused = respond(
            &get(
                "/metrics",
                &[("accept", "application/openmetrics-text;q=0")],
            ),
            &rx,
        );
        assert_eq!(refused.headers()[header::CONTENT_TYPE], TEXT_CONTENT_TYPE);
        assert_eq!(
            body(respond(&get("/nope", &[]), &rx)).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            body(respond(&get("/metrics/", &[]), &rx)).0,
            StatusCode::NOT_FOUND
        );
        assert!(body(respond(&get("/", &[]), &rx)).1.contains("/metrics"));
    }

    #[test]
    fn gzip_when_asked() {
        use std::io::Read as _;
        let (_tx, rx) = watch::channel(Some(exposition()));
        for accept_encoding in ["gzip", "deflate, gzip;q=0.5", "*", "GZIP"] {
            let res = respond(
                &get("/metrics", &[("accept-encoding", accept_encoding)]),
                &rx,
            );
            assert_eq!(
                res.headers()[header::CONTENT_ENCODING],
                "gzip",
                "{accept_encoding}"
            );
            assert_eq!(res.headers()[header::VARY], "Accept-Encoding");
            let (status, _) = body(res);
            assert_eq!(status, StatusCode::OK);
            let res = respond(
                &get("/metrics", &[("accept-encoding", accept_encoding)]),
                &rx,
            );
            let bytes = {
                use http_body_util::BodyExt as _;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(res.into_body().collect())
                    .expect("body")
                    .to_bytes()
            };
            let mut plain = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut plain)
                .expect("gzip");
            assert_eq!(plain, "text\n");
        }
        for accept_encoding in ["identity", "gzip;q=0", "br", ""] {
            let res = respond(
                &get("/metrics", &[("accept-encoding", accept_encoding)]),
                &rx,
            );
            assert!(
                res.headers().get(header::CONTENT_ENCODING).is_none(),
                "{accept_encoding}"
            );
            assert_eq!(body(res).1, "text\n");
        }
    }

    #[test]
    fn refuses_bodies_and_other_methods() {
        let (_tx, rx) = watch::channel(Some(exposition()));
        let with_len = get("/metrics", &[("content-length", "5")]);
        assert_eq!(
            body(respond(&with_len, &rx)).0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let chunked = get("/metrics", &[("transfer-encoding", "chunked")]);
        assert_eq!(
            body(respond(&chunked, &rx)).0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let empty = get("/metrics", &[("content-length", "0")]);
        assert_eq!(body(respond(&empty, &rx)).0, StatusCode::OK);
        let post = Request::builder()
            .method(Method::POST)
            .uri("/metrics")
            .body(())
            .expect("request");
        let res = respond(&post, &rx);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(body(res).0, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn before_the_first_collection_it_says_so() {
        let (_tx, rx) = watch::channel(None);
        assert_eq!(
            body(respond(&get("/metrics", &[]), &rx)).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn parses_listen_addresses() {
        assert_eq!(
            "127.0.0.1:9464".parse::<Listen>().expect("v4"),
            Listen::Tcp("127.0.0.1:9464".parse().expect("addr"))
        );
        assert!(matches!("[::1]:9464".parse::<Listen>(), Ok(Listen::Tcp(_))));
        assert_eq!(
            "unix:/run/memmon/exporter.sock"
                .parse::<Listen>()
                .expect("unix"),
            Listen::Unix("/run/memmon/exporter.sock".into())
        );
        for bad in [
            "",
            "9464",
            "localhost:9464",
            "unix:relative.sock",
            "unix:",
            "1.2.3.4:99999",
        ] {
            let err = bad.parse::<Listen>().expect_err(bad).to_string();
            assert!(err.contains("IP:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_unix_socket_replaces_a_stale_one_but_not_a_file_or_a_live_one() {
        let dir = std::env::temp_dir().join(format!("memmon-export-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.sock");
        let listen = Listen::Unix(path.clone());
        let live = listen.bind().expect("bind");
        assert!(matches!(listen.bind(), Err(HttpError::InUse(_))));
        drop(live);
        assert!(!path.exists(), "removed on drop");
        // A stale socket: bound by a listener that is gone without removing its file.
        let stale = std::os::unix::net::UnixListener::bind(dir.join("s.sock")).expect("bind");
        drop(stale);
        let again = Listen::Unix(dir.join("s.sock"))
            .bind()
            .expect("a stale socket is replaced");
        drop(again);
        assert!(!dir.join("s.sock").exists(), "removed on drop");
        std::fs::write(dir.join("file"), b"x").expect("file");
        assert!(matches!(
            Listen::Unix(dir.join("file")).bind(),
            Err(HttpError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(dir.join("file")).expect("kept"), b"x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
