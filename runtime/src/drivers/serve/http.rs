//! The REST side of the Open Inference Protocol over HTTP/1.1, with Triton's binary tensor
//! extension (the JSON header first, its length in `Inference-Header-Content-Length`, then
//! each binary tensor's bytes in the order of the inputs that declare `binary_data_size`).
//!
//! Health and server metadata are open (probes call them); model metadata and inference need
//! a token. `/metrics` is open: it holds counts only.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioTimer;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::listen::Connection;
use super::tensors::{
    InferRequest, InferResponse, InputTensor, JsonData, RequestedOutput, decode_binary,
    decode_json, encode_binary, encode_json, rows_of_shape,
};
use super::{ServeError, Server};

const HEADER_LENGTH: &str = "inference-header-content-length";

/// Bodies larger than this are decoded on a blocking thread.
const BLOCKING_DECODE_BYTES: usize = 256 * 1024;

/// One HTTP/1.1 connection, kept alive, until `stopped` turns true; a caller has the
/// request's wall time to send its headers (against connections held open by sending nothing).
pub(super) async fn serve_connection(
    server: Arc<Server>,
    io: Connection,
    mut stopped: watch::Receiver<bool>,
) {
    let header_time = server.limits.request_time.0;
    let service = hyper::service::service_fn(move |request| {
        let server = Arc::clone(&server);
        async move { Ok::<_, Infallible>(handle(&server, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_time)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopped.changed() => {
            // In-flight requests are answered; then the connection closes.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// One HTTP request: routed, answered, counted.
async fn handle(server: &Server, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["v2", "health", "live"]) => json_response(200, json!({ "live": true })),
        (&Method::GET, ["v2", "health", "ready"]) => {
            let ready = server.ready();
            json_response(if ready { 200 } else { 503 }, json!({ "ready": ready }))
        }
        (&Method::GET, ["v2"]) => json_response(
            200,
            json!({
                "name": "cordon",
                "version": env!("CARGO_PKG_VERSION"),
                "extensions": ["binary_tensor_data"],
            }),
        ),
        (&Method::GET, ["metrics"]) => {
            let mut response =
                Response::new(Full::new(Bytes::from(server.metrics.render(&server.name))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (_, ["v2", "models", name, rest @ ..]) => {
            let (version, rest) = match rest {
                ["versions", version, rest @ ..] => (Some(*version), rest),
                rest => (None, rest),
            };
            let result = match (&method, rest) {
                (&Method::GET, []) => metadata(server, &request, name, version),
                (&Method::GET, ["ready"]) => server.check_model(name, version).map(|()| {
                    let ready = server.ready();
                    json_response(if ready { 200 } else { 503 }, json!({ "ready": ready }))
                }),
                (&Method::POST, ["infer"]) => {
                    let result = infer(server, request, name, version, started).await;
                    let status = result
                        .as_ref()
                        .map_or_else(ServeError::http_status, |_| 200);
                    server.metrics.request("http", status, started.elapsed());
                    result
                }
                _ => Err(not_found(&method, &path)),
            };
            result.unwrap_or_else(|error| error_response(&error))
        }
        _ => error_response(&not_found(&method, &path)),
    }
}

fn not_found(method: &Method, path: &str) -> ServeError {
    ServeError::NotFound(format!(
        "no route {method} {}; see /v2 and /v2/models/<name>",
        super::shown(path)
    ))
}

fn metadata(
    server: &Server,
    request: &Request<Incoming>,
    name: &str,
    version: Option<&str>,
) -> Result<Response<Full<Bytes>>, ServeError> {
    server.authenticate(
        request
            .headers()
            .get(AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    )?;
    server.check_model(name, version)?;
    let metadata = server.model_metadata();
    let tensors = |list: &[(String, String)]| {
        list.iter()
            .map(|(name, datatype)| json!({ "name": name, "datatype": datatype, "shape": [-1] }))
            .collect::<Vec<_>>()
    };
    Ok(json_response(
        200,
        json!({
            "name": metadata.name,
            "versions": metadata.versions,
            "platform": metadata.platform,
            "inputs": tensors(&metadata.inputs),
            "outputs": tensors(&metadata.outputs),
        }),
    ))
}

async fn infer(
    server: &Server,
    request: Request<Incoming>,
    name: &str,
    version: Option<&str>,
    started: Instant,
) -> Result<Response<Full<Bytes>>, ServeError> {
    let caller = server
        .authenticate(
            request
                .headers()
                .get(AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )?
        .clone();
    server.check_model(name, version)?;
    let limit = server.limits.request_bytes.bytes();
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ServeError::TooLarge(limit));
    }
    let header_length = match request.headers().get(HEADER_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ServeError::BadRequest(
                        "Inference-Header-Content-Length is not a number of bytes".into(),
                    )
                })?,
        ),
    };
    let _room = server.body_room(declared, started).await?;
    let body = super::read_body(
        request.into_body(),
        limit,
        0,
        started,
        server.limits.request_time.0,
    )
    .await?;
    let max_rows = server.limits.request_rows;
    // A large body is decoded off the connections' threads, so that it does not hold up
    // every other caller's requests (and the health probes) meanwhile.
    let request = if body.len() > BLOCKING_DECODE_BYTES {
        tokio::task::spawn_blocking(move || parse_infer_request(&body, header_length, max_rows))
            .await
            .map_err(|e| ServeError::Internal(format!("decoding the request stopped: {e}")))??
    } else {
        parse_infer_request(&body, header_length, max_rows)?
    };
    let response = server.infer(&caller, request, started).await?;
    Ok(infer_response(&response))
}

/// A REST request's JSON header as read. Every field but `data` is small and kept as a JSON
/// value to check by hand (for errors that name what is wrong); `data`, the bulk of a JSON
/// request, is read straight into typed elements ([`JsonData`]).
#[derive(serde::Deserialize)]
struct JsonRequest {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    inputs: Option<Vec<JsonInput>>,
    #[serde(default)]
    outputs: Option<Value>,
}

#[derive(serde::Deserialize)]
struct JsonInput {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    datatype: Option<Value>,
    #[serde(default)]
    shape: Option<Value>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    data: Option<JsonData>,
}

/// A REST inference request: the JSON header, and the binary section after it when
/// `header_length` is given.
pub(crate) fn parse_infer_request(
    body: &[u8],
    header_length: Option<usize>,
    max_rows: u64,
) -> Result<InferRequest, ServeError> {
    let (header, mut binary) = match header_length {
        Some(length) if length > body.len() => {
            return Err(ServeError::BadRequest(format!(
                "Inference-Header-Content-Length is {length}, but the body has only {} bytes",
                body.len()
            )));
        }
        Some(length) => body.split_at(length),
        None => (body, &[][..]),
    };
    let header: JsonRequest = serde_json::from_slice(header)
        .map_err(|e| ServeError::BadRequest(format!("the request is not valid JSON: {e}")))?;
    let id = match header.id {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.len() <= 256 => Some(id),
        Some(_) => {
            return Err(ServeError::BadRequest(
                "`id` must be a string of at most 256 bytes".into(),
            ));
        }
    };
    let binary_output = header
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let inputs_json = header
        .inputs
        .ok_or_else(|| ServeError::BadRequest("the request has no `inputs` array".into()))?;
    let mut inputs = Vec::with_capacity(inputs_json.len());
    for (index, input) in inputs_json.into_iter().enumerate() {
        let name =
            input.name.as_ref().and_then(Value::as_str).ok_or_else(|| {
                ServeError::BadRequest(format!("input {index} has no `name` string"))
            })?;
        let datatype = input
            .datatype
            .as_ref()
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ServeError::BadRequest(format!("input `{name}` has no `datatype` string"))
            })?;
        let shape: Vec<i64> = input
            .shape
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|dims| dims.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| {
                ServeError::BadRequest(format!("input `{name}` has no `shape` array of integers"))
            })?;
        let rows = rows_of_shape(name, &shape, max_rows)?;
        let binary_size = input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .map(|size| {
                size.as_u64().ok_or_else(|| {
                    ServeError::BadRequest(format!(
                        "input `{name}`: binary_data_size is not a number of bytes"
                    ))
                })
            })
            .transpose()?;
        let data = match (binary_size, input.data) {
            (Some(size), _) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > binary.len() {
                    return Err(ServeError::BadRequest(format!(
                        "input `{name}`: binary_data_size is {size}, but only {} bytes of binary data are left",
                        binary.len()
                    )));
                }
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                decode_binary(name, datatype, rows, bytes)?
            }
            (None, Some(data)) => decode_json(name, datatype, rows, data)?,
            (None, None) => {
                return Err(ServeError::BadRequest(format!(
                    "input `{name}` has neither `data` nor binary_data_size"
                )));
            }
        };
        inputs.push(InputTensor {
            name: name.to_string(),
            datatype: datatype.to_string(),
            shape,
            data,
        });
    }
    if !binary.is_empty() {
        return Err(ServeError::BadRequest(format!(
            "{} bytes of binary data after the last binary input",
            binary.len()
        )));
    }
    let outputs = match &header.outputs {
        None | Some(Value::Null) => None,
        Some(Value::Array(outputs)) => Some(
            outputs
                .iter()
                .enumerate()
                .map(|(index, output)| {
                    let name = output.get("name").and_then(Value::as_str).ok_or_else(|| {
                        ServeError::BadRequest(format!("output {index} has no `name` string"))
                    })?;
                    Ok(RequestedOutput {
                        name: name.to_string(),
                        binary: output
                            .get("parameters")
                            .and_then(|p| p.get("binary_data"))
                            .and_then(Value::as_bool),
                    })
                })
                .collect::<Result<Vec<_>, ServeError>>()?,
        ),
        Some(_) => {
            return Err(ServeError::BadRequest("`outputs` must be an array".into()));
        }
    };
    Ok(InferRequest {
        id,
        inputs,
        outputs,
        binary_output,
    })
}

/// The response: JSON, with the binary outputs' bytes after it when any output is binary.
fn infer_response(response: &InferResponse) -> Response<Full<Bytes>> {
    let mut binary = Vec::new();
    let outputs: Vec<Value> = response
        .outputs
        .iter()
        .map(|output| {
            let shape = [output.array.len()];
            if output.binary {
                let bytes = encode_binary(&output.array);
                let size = bytes.len();
                binary.extend_from_slice(&bytes);
                json!({
                    "name": output.name, "datatype": output.datatype, "shape": shape,
                    "parameters": { "binary_data_size": size },
                })
            } else {
                json!({
                    "name": output.name, "datatype": output.datatype, "shape": shape,
                    "data": encode_json(&output.array),
                })
            }
        })
        .collect();
    let mut header = json!({
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    });
    if let (Some(id), Some(object)) = (&response.id, header.as_object_mut()) {
        object.insert("id".into(), json!(id));
    }
    let header = header.to_string();
    if binary.is_empty() {
        let mut http = Response::new(Full::new(Bytes::from(header)));
        http.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return http;
    }
    let header_length = header.len();
    let mut body = header.into_bytes();
    body.extend_from_slice(&binary);
    let mut http = Response::new(Full::new(Bytes::from(body)));
    http.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&header_length.to_string()) {
        http.headers_mut().insert(HEADER_LENGTH, value);
    }
    http
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(error: &ServeError) -> Response<Full<Bytes>> {
    let mut response = json_response(error.http_status(), json!({ "error": error.message() }));
    if matches!(error, ServeError::Unauthorized(_)) {
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    response
}
