//! `cordon serve`: online scoring over KServe's Open Inference Protocol v2 (REST and gRPC, the
//! protocol Triton, KServe and MLServer speak), with the guarantees of a batch run.
//!
//! One [`PreparedModel`] per role the callers' tokens name, each with a pool of warm instances
//! and a dynamic batcher ([`batcher`]). A request is authenticated (a bearer token bound to a
//! role, [`tokens`]), its tensors checked against what the policy's request binding grants
//! (a tensor it does not grant is refused, naming it), and its rows go through the same
//! grant's query as a table's rows (filter, masks, role, casts: the data plane) before they
//! reach the sandbox. Rows the filter keeps out get null outputs, and the `cordon_scored`
//! output says which rows were scored. Key columns never enter the sandbox; they come back
//! beside the outputs.
//!
//! The serving session is one run of the audit trail, with an event per request batch and a
//! usage record per period ([`recorder`]); `/metrics` gives Prometheus counts ([`metrics`]).

mod batcher;
mod grpc;
mod http;
mod listen;
mod metrics;
mod recorder;
pub mod tensors;
pub mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::RunError;
use crate::manifest::InputMode;
use crate::policy::{Policy, ServePolicy};
use crate::prepare::PreparedModel;
use crate::record::{RunFacts, RunRecorder};
use crate::run::RunRequest;
use crate::runtime::Runtime;
use crate::source::{RequestColumn, RequestSource};
use batcher::ServedModel;
use metrics::Metrics;
use recorder::AuditWriter;
use tensors::{InferRequest, InferResponse, OutputTensor, datatype_of, to_array};
use tokens::{AuthError, Caller, Tokens};

pub use tokens::new_token;

/// The output that says, for each request row, whether it passed the policy's filter and was
/// scored (`false`: its outputs are null).
pub const SCORED_OUTPUT: &str = "cordon_scored";

/// What a request can fail with, each with its HTTP status and gRPC code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is larger than {0} bytes ([serve] request-bytes)")]
    TooLarge(u64),
    #[error("the queue is full ({0} rows wait for an instance, [serve] queue-rows); retry later")]
    QueueFull(u64),
    #[error("the model failed: {0}")]
    Model(String),
    #[error("the request took longer than {0:?} ([serve] request-time)")]
    Timeout(Duration),
    #[error("the request body did not arrive within {0:?} ([serve] request-time)")]
    SlowBody(Duration),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    pub fn http_status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) => 400,
            ServeError::Unauthorized(_) => 401,
            ServeError::NotFound(_) => 404,
            ServeError::TooLarge(_) => 413,
            ServeError::QueueFull(_) => 429,
            ServeError::Model(_) | ServeError::Internal(_) => 500,
            ServeError::Unavailable(_) => 503,
            ServeError::Timeout(_) => 504,
            ServeError::SlowBody(_) => 408,
        }
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> u32 {
        match self {
            ServeError::BadRequest(_) | ServeError::TooLarge(_) => 3,
            ServeError::Unauthorized(_) => 16,
            ServeError::NotFound(_) => 5,
            ServeError::QueueFull(_) => 8,
            ServeError::Model(_) | ServeError::Internal(_) => 13,
            ServeError::Unavailable(_) => 14,
            ServeError::Timeout(_) | ServeError::SlowBody(_) => 4,
        }
    }

    /// The message a response carries, bounded: it may hold a caller's strings or the
    /// model's words.
    pub fn message(&self) -> String {
        crate::names::printable(&self.to_string(), ERROR_MESSAGE_BYTES)
    }
}

/// The most of an error message a response carries.
const ERROR_MESSAGE_BYTES: usize = 4096;

/// A caller's string as an error message quotes it: at most 128 bytes, control and bidi
/// characters escaped.
pub(crate) fn shown(text: &str) -> String {
    crate::names::printable(text, 128)
}

/// A request's body, at most `limit` bytes, read by `deadline` (against a caller that holds
/// a connection by sending slowly). `slack` is what the framing adds to the limit (gRPC's
/// five-byte prefix).
async fn read_body(
    body: hyper::body::Incoming,
    limit: u64,
    slack: usize,
    started: Instant,
    time: Duration,
) -> Result<bytes::Bytes, ServeError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, limit as usize + slack);
    let collected = tokio::time::timeout_at((started + time).into(), limited.collect())
        .await
        .map_err(|_| ServeError::SlowBody(time))?;
    let body = collected.map_err(|error| {
        if error.is::<http_body_util::LengthLimitError>() {
            ServeError::TooLarge(limit)
        } else {
            ServeError::BadRequest(format!("cannot read the request body: {error}"))
        }
    })?;
    Ok(body.to_bytes())
}

/// What `cordon serve` serves, and where.
pub struct ServeRequest {
    pub package: PathBuf,
    pub policy: PathBuf,
    pub base_dir: PathBuf,
    pub allow_unsigned: bool,
    /// REST (HTTP/1.1).
    pub http: SocketAddr,
    /// gRPC (HTTP/2), if wanted.
    pub grpc: Option<SocketAddr>,
}

/// A started server: its models, callers and records; [`Server::serve`] runs it.
pub struct Server {
    name: String,
    version: String,
    /// Per role (`None` when the policy has none).
    models: BTreeMap<Option<String>, Arc<ServedModel>>,
    /// The request tensors, as every role's binding takes them.
    columns: Vec<RequestColumn>,
    /// The outputs in the order a response lists them: the keys, the model's, `cordon_scored`.
    outputs: Vec<(String, &'static str)>,
    tokens: Tokens,
    limits: ServePolicy,
    metrics: Arc<Metrics>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// REST's and gRPC's, until [`Server::serve`] takes them.
    listeners: Option<(TcpListener, Option<TcpListener>)>,
    audit: Option<AuditWriter>,
    batchers: Vec<tokio::task::JoinHandle<()>>,
    stopping: AtomicBool,
    /// Set once the audit trail or the usage ledger could not be written: requests are
    /// refused from then on.
    trail_failed: Arc<AtomicBool>,
    /// Bytes of request bodies being read and decoded now (`[serve] in-flight-bytes`).
    in_flight: tokio::sync::Semaphore,
    tokio: Arc<tokio::runtime::Runtime>,
    /// The run's id in the audit trail.
    pub run_id: String,
}

/// What serving did, for the summary printed at shutdown.
#[derive(Debug, Clone)]
pub struct ServeSummary {
    pub requests_failed: u64,
    pub rows_scored: u64,
    pub batches: u64,
    pub audit_head: Option<String>,
}

impl Server {
    /// Loads, verifies and prepares the package once per role the tokens name, starts each
    /// role's instances and batcher, and binds the listeners. Nothing is served yet.
    pub fn start(runtime: &Runtime, request: &ServeRequest) -> Result<Server, RunError> {
        let policy = Policy::load(&request.policy, &request.base_dir)?;
        let limits = policy.serve.clone().ok_or_else(|| {
            RunError::Serve(format!(
                "{}: the policy has no [serve] section (tokens = \"<file>\" at least)",
                policy.path.display()
            ))
        })?;
        let tokens = Tokens::load(&limits.tokens, &policy.roles)?;
        let tls = match (&limits.tls_certificate, &limits.tls_key) {
            (Some(certificate), Some(key)) => Some(tls_config(certificate, key)?),
            _ => None,
        };
        let tokio = Arc::clone(&runtime.tokio);
        let mut recorder = RunRecorder::open(&policy, Instant::now())?;
        let run_request = |role: Option<String>| RunRequest {
            package_dir: request.package.clone(),
            policy: request.policy.clone(),
            base_dir: request.base_dir.clone(),
            role,
            allow_unsigned: request.allow_unsigned,
        };
        let metrics = Arc::new(Metrics::default());
        let queued = Arc::new(AtomicU64::new(0));
        let mut prepared_models = Vec::new();
        for role in tokens.roles() {
            // Loaded and verified for each role: a package is read once per model prepared.
            let (package, signature) = runtime.load_verified(&run_request(None), &policy)?;
            let admitted = runtime.admit(package, signature, &policy, role.as_deref())?;
            let prepared = runtime.prepare(admitted)?;
            check_servable(&prepared)?;
            let source = tokio
                .block_on(RequestSource::prepare(
                    &prepared.grant().input,
                    policy.limits.batch_rows as usize,
                ))
                .map_err(RunError::Data)?;
            prepared_models.push((role, prepared, source));
        }
        let Some((_, first, first_source)) = prepared_models.first() else {
            return Err(RunError::Serve("no caller can call the server".into()));
        };
        let facts = first.facts().clone();
        let columns = first_source.columns().to_vec();
        recorder.run_start(&facts, &policy)?;
        for (_, prepared, _) in &prepared_models {
            recorder.grant(&facts, prepared.grant(), &policy)?;
        }
        let grant = first.grant();
        let mut outputs: Vec<(String, &'static str)> = grant
            .input
            .key
            .iter()
            .map(|key| (key.clone(), "BYTES"))
            .collect();
        for column in &grant.output.columns {
            outputs.push((column.name.to_string(), datatype_of(column.ty)));
        }
        outputs.push((SCORED_OUTPUT.to_string(), "BOOL"));
        if let Some(clash) = outputs
            .iter()
            .filter(|(name, _)| name == SCORED_OUTPUT)
            .nth(1)
        {
            return Err(RunError::Serve(format!(
                "an output or key is named `{}`, which the server's own output takes",
                clash.0
            )));
        }
        let granted_columns: Vec<String> = grant
            .input
            .columns
            .iter()
            .map(|c| c.model.to_string())
            .collect();
        let run_id = recorder.run_id().to_string();
        let trail_failed = Arc::new(AtomicBool::new(false));
        let (audit, sender) = AuditWriter::start(
            recorder,
            facts.identity.clone(),
            granted_columns,
            limits.usage_period.0,
            Arc::clone(&trail_failed),
        )?;
        let mut models = BTreeMap::new();
        let mut batchers = Vec::new();
        for (role, prepared, source) in prepared_models {
            if source.columns() != columns.as_slice() {
                return Err(RunError::Serve(format!(
                    "role `{}` takes other request tensors than the others; a request binding's columns must not depend on the role",
                    role.as_deref().unwrap_or_default()
                )));
            }
            let (model, batcher) = ServedModel::start(
                role.clone(),
                prepared,
                source,
                Arc::clone(&metrics),
                Arc::clone(&queued),
                sender.clone(),
                tokio.handle(),
            )?;
            models.insert(role, model);
            batchers.push(batcher);
        }
        let bind = |address: SocketAddr| {
            tokio
                .block_on(TcpListener::bind(address))
                .map_err(|e| RunError::Serve(format!("cannot listen on {address}: {e}")))
        };
        let http = bind(request.http)?;
        let grpc = request.grpc.map(bind).transpose()?;
        let limits_in_flight = limits.in_flight_bytes.bytes() as usize;
        Ok(Server {
            name: facts.identity.name.clone(),
            version: facts.identity.version.clone(),
            models,
            columns,
            outputs,
            tokens,
            limits,
            metrics,
            tls,
            listeners: Some((http, grpc)),
            audit: Some(audit),
            batchers,
            stopping: AtomicBool::new(false),
            trail_failed,
            in_flight: tokio::sync::Semaphore::new(limits_in_flight),
            tokio,
            run_id,
        })
    }

    /// Where REST and gRPC listen (the ports, when 0 was asked for).
    pub fn addresses(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match &self.listeners {
            Some((http, grpc)) => (
                http.local_addr().ok(),
                grpc.as_ref().and_then(|l| l.local_addr().ok()),
            ),
            None => (None, None),
        }
    }

    /// Whether requests go over TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// Serves until `shutdown` resolves, then stops taking connections, lets every request
    /// in flight finish (connections close once their answer is sent), scores what is
    /// queued, and closes the audit trail with the run's end.
    pub fn serve(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<ServeSummary, RunError> {
        let tokio = Arc::clone(&self.tokio);
        let listeners = self
            .listeners
            .take()
            .ok_or_else(|| RunError::Serve("the server is already serving".into()))?;
        let audit = self.audit.take();
        let batchers = std::mem::take(&mut self.batchers);
        let server = Arc::new(self);
        let (stop, stopped) = watch::channel(false);
        let accept = tokio.block_on(async {
            let http = tokio::spawn(listen::accept_loop(
                Arc::clone(&server),
                listeners.0,
                listen::with_alpn(server.tls.as_ref(), b"http/1.1"),
                stopped.clone(),
                http::serve_connection,
            ));
            let grpc = listeners.1.map(|listener| {
                tokio::spawn(listen::accept_loop(
                    Arc::clone(&server),
                    listener,
                    listen::with_alpn(server.tls.as_ref(), b"h2"),
                    stopped.clone(),
                    grpc::serve_connection,
                ))
            });
            shutdown.await;
            server.stopping.store(true, Ordering::Release);
            let _ = stop.send(true);
            // Each accept loop ends once its connections have answered what they took.
            let mut ended = vec![http];
            ended.extend(grpc);
            let limit = server.limits.request_time.0 + Duration::from_secs(5);
            let drained = tokio::time::timeout(limit, futures::future::join_all(ended)).await;
            // Then the batchers: what is queued is scored, then they end.
            for model in server.models.values() {
                model.close();
            }
            let batched = tokio::time::timeout(limit, futures::future::join_all(batchers)).await;
            (drained.is_ok(), batched.is_ok())
        });
        if !accept.0 {
            eprintln!("cordon serve: some connections did not finish in time and were dropped");
        }
        if !accept.1 {
            eprintln!(
                "cordon serve: some batches did not finish in time; the run's end counts what had"
            );
        }
        let mut facts = RunFacts::default();
        for model in server.models.values() {
            facts.totals.merge(model.totals());
        }
        facts.rows_in = server.metrics.rows_scored.load(Ordering::Relaxed);
        facts.rows_out = server.metrics.rows_answered.load(Ordering::Relaxed);
        facts.batches = server.metrics.batches.load(Ordering::Relaxed);
        let audit_head = match audit {
            Some(writer) => writer.finish(facts)?,
            None => None,
        };
        Ok(ServeSummary {
            requests_failed: server.metrics.errors(),
            rows_scored: server.metrics.rows_scored.load(Ordering::Relaxed),
            batches: server.metrics.batches.load(Ordering::Relaxed),
            audit_head,
        })
    }

    /// The caller a request's `Authorization` header names.
    fn authenticate(&self, authorization: Option<&[u8]>) -> Result<&Caller, ServeError> {
        self.tokens
            .caller(authorization)
            .map_err(|error| match error {
                AuthError::Missing => ServeError::Unauthorized(
                    "no bearer token: send `Authorization: Bearer <token>`".into(),
                ),
                AuthError::Unknown => ServeError::Unauthorized("the token is not known".into()),
            })
    }

    /// Whether `name` (and `version`, if given) is the model served.
    fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ServeError> {
        if name != self.name {
            return Err(ServeError::NotFound(format!(
                "no model `{}` here; this server serves `{}`",
                shown(name),
                self.name
            )));
        }
        match version {
            Some(version) if !version.is_empty() && version != self.version => {
                Err(ServeError::NotFound(format!(
                    "model `{}` has no version `{}`; it has {}",
                    self.name,
                    shown(version),
                    self.version
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether every role's model has an instance and takes requests.
    fn ready(&self) -> bool {
        !self.stopping.load(Ordering::Acquire)
            && !self.trail_failed.load(Ordering::Acquire)
            && self.models.values().all(|m| m.ready())
    }

    /// Room for one request body among those being read and decoded (`[serve]
    /// in-flight-bytes`): its declared length, or `request-bytes` when it declares none;
    /// waited for until the request's deadline. Held until its answer is encoded.
    async fn body_room(
        &self,
        declared: Option<u64>,
        started: Instant,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, ServeError> {
        let most = self.limits.request_bytes.bytes();
        let bytes = declared.unwrap_or(most).clamp(1, most);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let deadline = started + self.limits.request_time.0;
        match tokio::time::timeout_at(deadline.into(), self.in_flight.acquire_many(bytes)).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ServeError::Unavailable(
                "the server is shutting down".into(),
            )),
            Err(_) => Err(ServeError::Unavailable(format!(
                "the server is reading {} of request bodies ([serve] in-flight-bytes); retry later",
                self.limits.in_flight_bytes
            ))),
        }
    }

    /// Scores one request for `caller`: its tensors checked against the request binding, its
    /// rows through the role's grant and model, and the response's outputs. The request's
    /// wall time counts from `started`, when its headers were read.
    async fn infer(
        &self,
        caller: &Caller,
        request: InferRequest,
        started: Instant,
    ) -> Result<InferResponse, ServeError> {
        if self.trail_failed.load(Ordering::Acquire) {
            return Err(ServeError::Unavailable(
                "the audit trail cannot be written; the server takes no more requests".into(),
            ));
        }
        let arrived = Instant::now();
        let model = self
            .models
            .get(&caller.role)
            .ok_or_else(|| ServeError::Internal(format!("no model for role {:?}", caller.role)))?;
        let (columns, rows) = self.request_columns(&request)?;
        let wanted = self.requested_outputs(&request)?;
        let deadline = started + self.limits.request_time.0;
        let scored = model
            .score(columns, rows, caller.name.clone(), deadline, arrived)
            .await?;
        self.metrics
            .rows_answered
            .fetch_add(rows as u64, Ordering::Relaxed);
        Ok(InferResponse {
            model_name: self.name.clone(),
            model_version: self.version.clone(),
            id: request.id,
            outputs: response_outputs(&scored, &wanted)?,
        })
    }

    /// The request's tensors as the request binding's columns, in its order: each tensor the
    /// binding takes exactly once, of one length, nothing else.
    fn request_columns(
        &self,
        request: &InferRequest,
    ) -> Result<(Vec<ArrayRef>, usize), ServeError> {
        let mut by_name: BTreeMap<&str, &tensors::InputTensor> = BTreeMap::new();
        for tensor in &request.inputs {
            if !self.columns.iter().any(|c| c.name == tensor.name) {
                return Err(ServeError::BadRequest(format!(
                    "input `{}` is not granted by the policy; a request carries exactly: {}",
                    shown(&tensor.name),
                    self.column_list()
                )));
            }
            if by_name.insert(&tensor.name, tensor).is_some() {
                return Err(ServeError::BadRequest(format!(
                    "input `{}` is given twice",
                    tensor.name
                )));
            }
        }
        let mut rows = None;
        let mut arrays = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let tensor = by_name.get(column.name.as_str()).ok_or_else(|| {
                ServeError::BadRequest(format!(
                    "input `{}` is missing; a request carries exactly: {}",
                    column.name,
                    self.column_list()
                ))
            })?;
            let length = tensor.data.len();
            match rows {
                None => rows = Some(length),
                Some(rows) if rows != length => {
                    return Err(ServeError::BadRequest(format!(
                        "input `{}` has {length} rows, but other inputs have {rows}",
                        column.name
                    )));
                }
                Some(_) => {}
            }
            arrays.push(to_array(tensor, column)?);
        }
        let rows = rows.unwrap_or(0);
        if rows == 0 {
            return Err(ServeError::BadRequest("the request has no rows".into()));
        }
        Ok((arrays, rows))
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("{} ({})", c.name, datatype_of(c.ty)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The outputs a request asks for, each with whether it goes in binary (REST).
    fn requested_outputs(&self, request: &InferRequest) -> Result<Vec<(String, bool)>, ServeError> {
        match &request.outputs {
            None => Ok(self
                .outputs
                .iter()
                .map(|(name, _)| (name.clone(), request.binary_output))
                .collect()),
            Some(asked) if asked.len() > self.outputs.len() => {
                Err(ServeError::BadRequest(format!(
                    "the request asks for {} outputs; there are {}",
                    asked.len(),
                    self.outputs.len()
                )))
            }
            Some(asked) => asked
                .iter()
                .enumerate()
                .map(|(index, output)| {
                    // Each output once: a request repeating one would have us encode its
                    // rows again for every repetition.
                    if asked.iter().take(index).any(|o| o.name == output.name) {
                        Err(ServeError::BadRequest(format!(
                            "output `{}` is asked for twice",
                            shown(&output.name)
                        )))
                    } else if self.outputs.iter().any(|(name, _)| *name == output.name) {
                        Ok((
                            output.name.clone(),
                            output.binary.unwrap_or(request.binary_output),
                        ))
                    } else {
                        Err(ServeError::BadRequest(format!(
                            "there is no output `{}`; the outputs are: {}",
                            shown(&output.name),
                            self.outputs
                                .iter()
                                .map(|(name, _)| name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                })
                .collect(),
        }
    }

    /// `/v2/models/{name}`: the inputs a request carries and the outputs it gets.
    fn model_metadata(&self) -> ModelMetadata {
        ModelMetadata {
            name: self.name.clone(),
            versions: vec![self.version.clone()],
            platform: "cordon".into(),
            inputs: self
                .columns
                .iter()
                .map(|c| (c.name.clone(), datatype_of(c.ty).to_string()))
                .collect(),
            outputs: self
                .outputs
                .iter()
                .map(|(name, datatype)| (name.clone(), datatype.to_string()))
                .collect(),
        }
    }
}

/// A model's metadata, whichever protocol asks.
pub(crate) struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<(String, String)>,
    pub outputs: Vec<(String, String)>,
}

/// Only row-mode models, for now: a partition's rows would have to arrive in one request.
fn check_servable(prepared: &PreparedModel) -> Result<(), RunError> {
    let input = &prepared.grant().input;
    if input.mode != InputMode::Row {
        return Err(RunError::Serve(format!(
            "`{}` is a partition-mode model; cordon serve scores row-mode models only for now (use cordon run or cordon sql)",
            prepared.facts().identity.name
        )));
    }
    if !input.source.as_os_str().eq(crate::policy::REQUEST_SOURCE) {
        return Err(RunError::Serve(format!(
            "[bind.{}] reads {}; to serve it, bind it to requests with `source = \"request\"`",
            input.name,
            input.source.display()
        )));
    }
    Ok(())
}

/// The response's tensors, in the order asked: each a column of the scored rows.
fn response_outputs(
    scored: &RecordBatch,
    wanted: &[(String, bool)],
) -> Result<Vec<OutputTensor>, ServeError> {
    wanted
        .iter()
        .map(|(name, binary)| {
            let array = scored
                .column_by_name(name)
                .ok_or_else(|| ServeError::Internal(format!("output `{name}` is missing")))?;
            let datatype = match array.data_type() {
                datafusion::arrow::datatypes::DataType::Float64 => "FP64",
                datafusion::arrow::datatypes::DataType::Float32 => "FP32",
                datafusion::arrow::datatypes::DataType::Boolean => "BOOL",
                datafusion::arrow::datatypes::DataType::Utf8 => "BYTES",
                _ => "INT64",
            };
            Ok(OutputTensor {
                name: name.clone(),
                datatype,
                array: Arc::clone(array),
                binary: *binary,
            })
        })
        .collect()
}

/// rustls with the policy's certificate and key; each listener adds the one protocol it
/// speaks by ALPN ([`listen::with_alpn`]).
fn tls_config(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, RunError> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            RunError::Serve(format!(
                "{}: cannot read the TLS certificate: {e}",
                certificate.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(RunError::Serve(format!(
            "{}: no PEM certificate in it",
            certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| RunError::Serve(format!("{}: cannot read the TLS key: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            RunError::Serve(format!(
                "the TLS certificate and key do not go together: {e}"
            ))
        })?;
    Ok(Arc::new(config))
}
