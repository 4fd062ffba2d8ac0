//! The gRPC side of the Open Inference Protocol: `inference.GRPCInferenceService` of KServe's
//! `grpc_predict_v2.proto` (which Triton's `grpc_service.proto` extends with the same field
//! numbers), unary calls over HTTP/2. The messages are written out here as prost structs, so
//! the build needs no protoc; each call is a length-prefixed message in, one out, and the
//! status in the trailers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::tensors::{
    InferRequest, InputTensor, RequestedOutput, TensorData, decode_binary, encode_binary,
    rows_of_shape,
};
use super::{ServeError, Server};

/// The messages of `grpc_predict_v2.proto` that Cordon answers.
pub mod proto {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServerLiveResponse {
        #[prost(bool, tag = "1")]
        pub live: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServerReadyResponse {
        #[prost(bool, tag = "1")]
        pub ready: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelReadyRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelReadyResponse {
        #[prost(bool, tag = "1")]
        pub ready: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServerMetadataResponse {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(string, repeated, tag = "3")]
        pub extensions: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelMetadataResponse {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, repeated, tag = "2")]
        pub versions: Vec<String>,
        #[prost(string, tag = "3")]
        pub platform: String,
        #[prost(message, repeated, tag = "4")]
        pub inputs: Vec<TensorMetadata>,
        #[prost(message, repeated, tag = "5")]
        pub outputs: Vec<TensorMetadata>,
    }

    /// The variants keep the proto's own names (`bool_param`, ...).
    #[allow(clippy::enum_variant_names)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParameterChoice {
        #[prost(bool, tag = "1")]
        BoolParam(bool),
        #[prost(int64, tag = "2")]
        Int64Param(i64),
        #[prost(string, tag = "3")]
        StringParam(String),
        #[prost(double, tag = "4")]
        DoubleParam(f64),
        #[prost(uint64, tag = "5")]
        Uint64Param(u64),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferParameter {
        #[prost(oneof = "ParameterChoice", tags = "1, 2, 3, 4, 5")]
        pub parameter_choice: Option<ParameterChoice>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferTensorContents {
        #[prost(bool, repeated, tag = "1")]
        pub bool_contents: Vec<bool>,
        #[prost(int32, repeated, tag = "2")]
        pub int_contents: Vec<i32>,
        #[prost(int64, repeated, tag = "3")]
        pub int64_contents: Vec<i64>,
        #[prost(uint32, repeated, tag = "4")]
        pub uint_contents: Vec<u32>,
        #[prost(uint64, repeated, tag = "5")]
        pub uint64_contents: Vec<u64>,
        #[prost(float, repeated, tag = "6")]
        pub fp32_contents: Vec<f32>,
        #[prost(double, repeated, tag = "7")]
        pub fp64_contents: Vec<f64>,
        #[prost(bytes = "vec", repeated, tag = "8")]
        pub bytes_contents: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferInputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
        #[prost(map = "string, message", tag = "4")]
        pub parameters: HashMap<String, InferParameter>,
        #[prost(message, optional, tag = "5")]
        pub contents: Option<InferTensorContents>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferRequestedOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(map = "string, message", tag = "2")]
        pub parameters: HashMap<String, InferParameter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferRequest {
        #[prost(string, tag = "1")]
        pub model_name: String,
        #[prost(string, tag = "2")]
        pub model_version: String,
        #[prost(string, tag = "3")]
        pub id: String,
        #[prost(map = "string, message", tag = "4")]
        pub parameters: HashMap<String, InferParameter>,
        #[prost(message, repeated, tag = "5")]
        pub inputs: Vec<InferInputTensor>,
        #[prost(message, repeated, tag = "6")]
        pub outputs: Vec<InferRequestedOutputTensor>,
        #[prost(bytes = "vec", repeated, tag = "7")]
        pub raw_input_contents: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
        #[prost(map = "string, message", tag = "4")]
        pub parameters: HashMap<String, InferParameter>,
        #[prost(message, optional, tag = "5")]
        pub contents: Option<InferTensorContents>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferResponse {
        #[prost(string, tag = "1")]
        pub model_name: String,
        #[prost(string, tag = "2")]
        pub model_version: String,
        #[prost(string, tag = "3")]
        pub id: String,
        #[prost(map = "string, message", tag = "4")]
        pub parameters: HashMap<String, InferParameter>,
        #[prost(message, repeated, tag = "5")]
        pub outputs: Vec<InferOutputTensor>,
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub raw_output_contents: Vec<Vec<u8>>,
    }
}

type GrpcBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Accepts HTTP/2 connections until `stopped` turns true, then waits for each to finish.
pub(super) async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let (done, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let server = Arc::clone(&server);
        let stopped = stopped.clone();
        let done = done.clone();
        tokio::spawn(async move {
            match server.tls.clone() {
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(server, TokioIo::new(stream), stopped).await;
                    }
                }
                None => serve_connection(server, TokioIo::new(stream), stopped).await,
            }
            drop(done);
        });
    }
    drop(done);
    let _ = all_done.recv().await;
}

async fn serve_connection<I>(server: Arc<Server>, io: I, mut stopped: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let server = Arc::clone(&server);
        async move { Ok::<_, Infallible>(handle(&server, request).await) }
    });
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(256)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// One call: its method from the path, its message from the body.
async fn handle(server: &Server, request: Request<Incoming>) -> Response<GrpcBody> {
    let started = Instant::now();
    let method = request
        .uri()
        .path()
        .strip_prefix("/inference.GRPCInferenceService/")
        .unwrap_or_default()
        .to_string();
    let authorization = request.headers().get(AUTHORIZATION).cloned();
    let limit = server.limits.request_bytes.bytes();
    let message = match read_message(request, limit).await {
        Ok(message) => message,
        Err(error) => return reply(Err(error)),
    };
    let auth = || server.authenticate(authorization.as_ref().map(HeaderValue::as_bytes));
    let result = match method.as_str() {
        "ServerLive" => Ok(proto::ServerLiveResponse { live: true }.encode_to_vec()),
        "ServerReady" => Ok(proto::ServerReadyResponse {
            ready: server.ready(),
        }
        .encode_to_vec()),
        "ServerMetadata" => Ok(proto::ServerMetadataResponse {
            name: "cordon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        }
        .encode_to_vec()),
        "ModelReady" => decode::<proto::ModelReadyRequest>(&message).and_then(|request| {
            server
                .check_model(&request.name, Some(&request.version))
                .map(|()| {
                    proto::ModelReadyResponse {
                        ready: server.ready(),
                    }
                    .encode_to_vec()
                })
        }),
        "ModelMetadata" => decode::<proto::ModelReadyRequest>(&message).and_then(|request| {
            auth()?;
            server.check_model(&request.name, Some(&request.version))?;
            let metadata = server.model_metadata();
            let tensors = |list: Vec<(String, String)>| {
                list.into_iter()
                    .map(|(name, datatype)| proto::TensorMetadata {
                        name,
                        datatype,
                        shape: vec![-1],
                    })
                    .collect()
            };
            Ok(proto::ModelMetadataResponse {
                name: metadata.name,
                versions: metadata.versions,
                platform: metadata.platform,
                inputs: tensors(metadata.inputs),
                outputs: tensors(metadata.outputs),
            }
            .encode_to_vec())
        }),
        "ModelInfer" => {
            let result = infer(server, auth, &message).await;
            let status = result
                .as_ref()
                .map_or_else(ServeError::http_status, |_| 200);
            server.metrics.request("grpc", status, started.elapsed());
            result
        }
        other => {
            let mut other = other.to_string();
            other.truncate(64);
            Err(ServeError::NotFound(format!(
                "no method `{}` in inference.GRPCInferenceService",
                other.escape_debug()
            )))
        }
    };
    reply(result)
}

async fn infer<'a>(
    server: &'a Server,
    auth: impl FnOnce() -> Result<&'a super::Caller, ServeError>,
    message: &[u8],
) -> Result<Vec<u8>, ServeError> {
    let caller = auth()?.clone();
    let request = decode::<proto::ModelInferRequest>(message)?;
    server.check_model(&request.model_name, Some(&request.model_version))?;
    let infer_request = to_infer_request(request, server.limits.request_rows)?;
    let response = server.infer(&caller, infer_request).await?;
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw = Vec::with_capacity(response.outputs.len());
    for output in response.outputs {
        outputs.push(proto::InferOutputTensor {
            name: output.name,
            datatype: output.datatype.into(),
            shape: vec![output.array.len() as i64],
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(encode_binary(&output.array));
    }
    Ok(proto::ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: response.id.unwrap_or_default(),
        parameters: HashMap::new(),
        outputs,
        raw_output_contents: raw,
    }
    .encode_to_vec())
}

/// The request's tensors, from `raw_input_contents` (what tritonclient sends) or `contents`.
fn to_infer_request(
    request: proto::ModelInferRequest,
    max_rows: u64,
) -> Result<InferRequest, ServeError> {
    let uses_raw = !request.raw_input_contents.is_empty();
    if uses_raw && request.raw_input_contents.len() != request.inputs.len() {
        return Err(ServeError::BadRequest(format!(
            "{} inputs but {} raw_input_contents",
            request.inputs.len(),
            request.raw_input_contents.len()
        )));
    }
    let mut raw = request.raw_input_contents.into_iter();
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let rows = rows_of_shape(&input.name, &input.shape, max_rows)?;
        let data = match raw.next() {
            Some(bytes) => decode_binary(&input.name, &input.datatype, rows, &bytes)?,
            None => from_contents(&input, rows)?,
        };
        inputs.push(InputTensor {
            name: input.name,
            datatype: input.datatype,
            shape: input.shape,
            data,
        });
    }
    let outputs = if request.outputs.is_empty() {
        None
    } else {
        Some(
            request
                .outputs
                .into_iter()
                .map(|output| RequestedOutput {
                    name: output.name,
                    binary: Some(true),
                })
                .collect(),
        )
    };
    Ok(InferRequest {
        id: (!request.id.is_empty()).then_some(request.id),
        inputs,
        outputs,
        binary_output: true,
    })
}

fn from_contents(input: &proto::InferInputTensor, rows: usize) -> Result<TensorData, ServeError> {
    let contents = input.contents.clone().unwrap_or_default();
    let data = match input.datatype.as_str() {
        "FP64" => TensorData::Fp64(contents.fp64_contents),
        "FP32" => TensorData::Fp32(contents.fp32_contents),
        "INT64" => TensorData::Int64(contents.int64_contents),
        "INT32" => TensorData::Int32(contents.int_contents),
        "BOOL" => TensorData::Bool(contents.bool_contents),
        "BYTES" => TensorData::Bytes(contents.bytes_contents),
        other => {
            return Err(ServeError::BadRequest(format!(
                "input `{}` has datatype `{}`; Cordon takes FP64, FP32, INT64, INT32, BOOL and BYTES",
                input.name,
                other.escape_debug()
            )));
        }
    };
    if data.len() != rows {
        return Err(ServeError::BadRequest(format!(
            "input `{}`: {} elements in its contents, but its shape says {rows}",
            input.name,
            data.len()
        )));
    }
    Ok(data)
}

fn decode<M: Message + Default>(message: &[u8]) -> Result<M, ServeError> {
    M::decode(message)
        .map_err(|e| ServeError::BadRequest(format!("the request is not a valid message: {e}")))
}

/// The one length-prefixed, uncompressed message of a unary call.
async fn read_message(request: Request<Incoming>, limit: u64) -> Result<Vec<u8>, ServeError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/grpc") {
        return Err(ServeError::BadRequest(format!(
            "content-type is `{}`, not application/grpc",
            content_type.escape_debug()
        )));
    }
    let body = Limited::new(request.into_body(), limit as usize + 5)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                ServeError::TooLarge(limit)
            } else {
                ServeError::BadRequest(format!("cannot read the request: {error}"))
            }
        })?
        .to_bytes();
    let mut frame = body.as_ref();
    if frame.len() < 5 {
        return Err(ServeError::BadRequest(
            "the request has no gRPC message".into(),
        ));
    }
    let compressed = frame.get_u8();
    let length = frame.get_u32() as usize;
    if compressed != 0 {
        return Err(ServeError::BadRequest(
            "compressed gRPC messages are not taken; send them uncompressed".into(),
        ));
    }
    if length != frame.len() {
        return Err(ServeError::BadRequest(format!(
            "the gRPC message says {length} bytes, but {} follow (one message per call)",
            frame.len()
        )));
    }
    Ok(frame.to_vec())
}

/// A unary answer: the message (if any) and the status in the trailers.
fn reply(result: Result<Vec<u8>, ServeError>) -> Response<GrpcBody> {
    let mut frames = Vec::with_capacity(2);
    let mut trailers = HeaderMap::new();
    match result {
        Ok(message) => {
            let mut framed = Vec::with_capacity(message.len() + 5);
            framed.push(0);
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            frames.push(Ok(Frame::data(Bytes::from(framed))));
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
        }
        Err(error) => {
            if let Ok(code) = HeaderValue::from_str(&error.grpc_code().to_string()) {
                trailers.insert("grpc-status", code);
            }
            if let Ok(message) = HeaderValue::from_str(&percent_encode(&error.to_string())) {
                trailers.insert("grpc-message", message);
            }
        }
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures::stream::iter(frames)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` as is, the rest as
/// `%XX` bytes of UTF-8.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
