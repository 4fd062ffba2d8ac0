//! The gRPC side of the Open Inference Protocol: `inference.GRPCInferenceService` of KServe's
//! `grpc_predict_v2.proto` (which Triton's `grpc_service.proto` extends with the same field
//! numbers), unary calls over HTTP/2. The messages are written out here as prost structs, so
//! the build needs no protoc; each call is a length-prefixed message in, one out, and the
//! status in the trailers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prost::Message;
use tokio::sync::watch;

use super::listen::Connection;
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

/// One HTTP/2 connection until `stopped` turns true.
pub(super) async fn serve_connection(
    server: Arc<Server>,
    io: Connection,
    mut stopped: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let server = Arc::clone(&server);
        async move { Ok::<_, Infallible>(handle(&server, request).await) }
    });
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
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

/// The largest message a call other than ModelInfer may carry (a model's name and version).
const OPEN_MESSAGE_BYTES: u64 = 4 * 1024;

/// One call: its method from the path, its message from the body.
async fn handle(server: &Server, request: Request<Incoming>) -> Response<GrpcBody> {
    let started = Instant::now();
    let method = request
        .uri()
        .path()
        .strip_prefix("/inference.GRPCInferenceService/")
        .unwrap_or_default()
        .to_string();
    // Probes are open and carry a model's name at most; the rest needs a token, checked
    // before the body is read, so that a caller without one cannot make us buffer a message.
    let open = matches!(
        method.as_str(),
        "ServerLive" | "ServerReady" | "ServerMetadata" | "ModelReady"
    );
    let caller = if open {
        None
    } else {
        let authorization = request.headers().get(AUTHORIZATION);
        match server.authenticate(authorization.map(HeaderValue::as_bytes)) {
            Ok(caller) => Some(caller.clone()),
            Err(error) => {
                if method == "ModelInfer" {
                    server
                        .metrics
                        .request("grpc", error.http_status(), started.elapsed());
                }
                return reply(Err(error));
            }
        }
    };
    let limit = if method == "ModelInfer" {
        server.limits.request_bytes.bytes()
    } else {
        OPEN_MESSAGE_BYTES
    };
    // Inference bodies take room among those in flight; the rest are bounded small.
    let _room = if method == "ModelInfer" {
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match server
            .body_room(declared.map(|d| d.saturating_sub(5)), started)
            .await
        {
            Ok(room) => Some(room),
            Err(error) => {
                server
                    .metrics
                    .request("grpc", error.http_status(), started.elapsed());
                return reply(Err(error));
            }
        }
    } else {
        None
    };
    let message = match read_message(request, limit, started, server.limits.request_time.0).await {
        Ok(message) => message,
        Err(error) => return reply(Err(error)),
    };
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
            let result = match &caller {
                Some(caller) => infer(server, caller, &message, started).await,
                None => Err(ServeError::Internal("an inference without a caller".into())),
            };
            let status = result
                .as_ref()
                .map_or_else(ServeError::http_status, |_| 200);
            server.metrics.request("grpc", status, started.elapsed());
            result
        }
        other => Err(ServeError::NotFound(format!(
            "no method `{}` in inference.GRPCInferenceService",
            super::shown(other)
        ))),
    };
    reply(result)
}

async fn infer(
    server: &Server,
    caller: &super::Caller,
    message: &[u8],
    started: Instant,
) -> Result<Vec<u8>, ServeError> {
    check_repeated_fields(message, server.columns.len(), server.outputs.len())?;
    let request = decode::<proto::ModelInferRequest>(message)?;
    server.check_model(&request.model_name, Some(&request.model_version))?;
    let infer_request = to_infer_request(request, server.limits.request_rows)?;
    let response = server.infer(caller, infer_request, started).await?;
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
                super::shown(other)
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

/// Counts the repeated fields of a `ModelInferRequest` on the wire, before prost builds them:
/// an empty entry is two bytes on the wire but hundreds in memory, so a message of empty
/// inputs would grow a hundredfold in decoding. A request carries at most one input (and one
/// raw content) per granted tensor, one output entry per output, a few parameters.
fn check_repeated_fields(message: &[u8], inputs: usize, outputs: usize) -> Result<(), ServeError> {
    use prost::encoding::decode_varint;
    const MAX_PARAMETERS: usize = 64;
    let bad =
        |why: &str| ServeError::BadRequest(format!("the request is not a valid message: {why}"));
    let mut counts = [0usize; 8];
    let mut buf = message;
    while !buf.is_empty() {
        let key = decode_varint(&mut buf).map_err(|_| bad("a field key is cut short"))?;
        let field = key >> 3;
        match key & 7 {
            0 => {
                decode_varint(&mut buf).map_err(|_| bad("a varint is cut short"))?;
            }
            1 | 5 => {
                let width = if key & 7 == 1 { 8 } else { 4 };
                if buf.len() < width {
                    return Err(bad("a fixed-width field is cut short"));
                }
                buf.advance(width);
            }
            2 => {
                let length = decode_varint(&mut buf).map_err(|_| bad("a length is cut short"))?;
                if length > buf.len() as u64 {
                    return Err(bad("a field is longer than the message"));
                }
                buf.advance(length as usize);
            }
            _ => return Err(bad("groups are not taken")),
        }
        if let Some(count) = counts.get_mut(field as usize) {
            *count += 1;
        }
    }
    // Field numbers of ModelInferRequest: 4 parameters, 5 inputs, 6 outputs, 7 raw contents.
    let too_many = |count: usize, most: usize, what: &str| {
        (count > most).then(|| {
            ServeError::BadRequest(format!(
                "the request has {count} {what}; at most {most} are taken"
            ))
        })
    };
    if let Some(error) = too_many(counts[5], inputs, "inputs")
        .or_else(|| too_many(counts[7], inputs, "raw_input_contents"))
        .or_else(|| too_many(counts[6], outputs, "outputs"))
        .or_else(|| too_many(counts[4], MAX_PARAMETERS, "parameters"))
    {
        return Err(error);
    }
    Ok(())
}

fn decode<M: Message + Default>(message: &[u8]) -> Result<M, ServeError> {
    M::decode(message)
        .map_err(|e| ServeError::BadRequest(format!("the request is not a valid message: {e}")))
}

/// The one length-prefixed, uncompressed message of a unary call.
async fn read_message(
    request: Request<Incoming>,
    limit: u64,
    started: Instant,
    time: Duration,
) -> Result<Vec<u8>, ServeError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/grpc") {
        return Err(ServeError::BadRequest(format!(
            "content-type is `{}`, not application/grpc",
            super::shown(content_type)
        )));
    }
    let body = super::read_body(request.into_body(), limit, 5, started, time).await?;
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
            if let Ok(message) = HeaderValue::from_str(&percent_encode(&error.message())) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of many empty inputs (two bytes each on the wire, hundreds once decoded) is
    /// refused before prost builds it; a real request passes; a cut one is refused.
    #[test]
    fn repeated_fields_are_counted_before_decoding() {
        let empty_inputs = [0x2a, 0x00].repeat(10_000);
        let error = check_repeated_fields(&empty_inputs, 3, 4).unwrap_err();
        assert!(error.to_string().contains("10000 inputs"), "{error}");

        let request = proto::ModelInferRequest {
            model_name: "churn".into(),
            inputs: vec![proto::InferInputTensor::default(); 3],
            outputs: vec![proto::InferRequestedOutputTensor::default(); 4],
            raw_input_contents: vec![vec![0; 16]; 3],
            ..Default::default()
        };
        let message = request.encode_to_vec();
        check_repeated_fields(&message, 3, 4).unwrap();
        let error = check_repeated_fields(&message, 3, 3).unwrap_err();
        assert!(error.to_string().contains("4 outputs"), "{error}");
        let error = check_repeated_fields(&message[..message.len() - 1], 3, 4).unwrap_err();
        assert!(
            error.to_string().contains("longer than the message"),
            "{error}"
        );
    }
}
