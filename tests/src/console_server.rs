//! The console served on loopback: each HTTP request becomes the request
//! API Gateway would hand the console function (method, path, query,
//! headers, body), and the function's answer goes back as it is. The main
//! job leaves it running for a newcomer to open, and the browser tests
//! drive Chromium against it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::RequestExt;
use tokio::net::TcpListener;

/// Largest request body the server reads (the function bounds it again).
const MAX_BODY: usize = 256 * 1024;

/// Converts one HTTP request to the function's request.
async fn to_lambda(request: hyper::Request<Incoming>) -> Result<lambda_http::Request, String> {
    let (parts, body) = request.into_parts();
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let query: HashMap<String, Vec<String>> = parts
        .uri
        .query()
        .map(|q| {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
            {
                map.entry(k).or_default().push(v);
            }
            map
        })
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(e) => lambda_http::Body::Binary(e.into_bytes()),
        }
    };
    let request = lambda_http::http::Request::from_parts(parts, body);
    Ok(request.with_query_string_parameters(query))
}

fn to_hyper(response: lambda_http::Response<lambda_http::Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

/// Serves the console on `listener` until the task is dropped.
pub fn serve(deps: optline_console::Deps, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let deps = Arc::new(deps);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let deps = deps.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let deps = deps.clone();
                    async move {
                        let response = match to_lambda(request).await {
                            Ok(r) => optline_console::handle(r, &deps, chrono::Utc::now()).await,
                            Err(_) => {
                                let mut r = lambda_http::Response::new(lambda_http::Body::from(
                                    "request too large",
                                ));
                                *r.status_mut() = lambda_http::http::StatusCode::PAYLOAD_TOO_LARGE;
                                r
                            }
                        };
                        Ok::<_, Infallible>(to_hyper(response))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
