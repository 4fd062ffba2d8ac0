//! Prepare once, score many. A package is first *admitted* under a policy (loaded, its
//! signature verified against the policy's `[trust]`, its component's imports and its graphs
//! checked, the grant resolved: nothing compiled, no row read), then *prepared* (compiled or
//! taken from the compile cache, graphs loaded, linked into an `InstancePre`). The
//! [`PreparedModel`] is built once per package, policy and role, and every driver makes its
//! [`Scorer`]s from it.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crate::error::RunError;
use crate::grant::Grant;
use crate::manifest::Device;
use crate::nn::GraphRegistry;
use crate::nn::GuestGraphs;
use crate::nn::graph_info::{self, AdmissionRules};
use crate::nn::jail::JailConfig;
use crate::nn::onnx::{LoadedGraph, SessionOptions};
use crate::package::Package;
use crate::policy::{Isolation, Policy};
use crate::run::RunRequest;
use crate::runtime::Runtime;
use crate::sandbox::{self, CacheOutcome};
use crate::scorer::{ScoreError, Scorer, ScorerTemplate};
use crate::signing::{self, Verified, VerifyError};
use crate::usage::PackageIdentity;
use crate::world::ComponentWorld;

/// A package admitted under a policy: verified, checked and granted, not yet compiled.
pub struct Admitted {
    pub package: Package,
    /// Who signed the package, or `None` when it is accepted unsigned (`allow_unsigned`).
    pub signature: Option<Verified>,
    pub grant: Grant,
    /// The policy the grant was resolved under: the model is prepared under this one and no
    /// other (its limits, inference settings and audit paths).
    policy: Policy,
    /// The contract version the component speaks (`0.4.0`, or an earlier one still served).
    pub contract: &'static str,
}

/// What the audit trail and the usage ledger say about a package, whichever driver runs it:
/// taken from the verified package before any of its code runs.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    pub identity: PackageIdentity,
    /// The package's digest over all its files (the signed root digest).
    pub package_digest: String,
    /// Who signed the package, or `None` when it is accepted unsigned (`allow_unsigned`).
    pub signature: Option<Verified>,
    /// Each graph's name and SHA-256.
    pub graphs: Vec<(String, String)>,
    /// The input columns the manifest asks for.
    pub asked: Vec<String>,
}

impl ModelFacts {
    pub fn of(package: &Package, signature: Option<&Verified>) -> ModelFacts {
        let manifest = &package.manifest;
        ModelFacts {
            identity: PackageIdentity {
                name: manifest.name.to_string(),
                version: manifest.version.clone(),
                publisher: manifest.publisher.to_string(),
                component_sha256: package.component_sha256.clone(),
            },
            package_digest: package.digest(),
            signature: signature.cloned(),
            graphs: package
                .graphs
                .iter()
                .map(|g| (g.spec.name.to_string(), g.sha256.clone()))
                .collect(),
            asked: manifest
                .input
                .columns
                .iter()
                .map(|c| c.name.to_string())
                .collect(),
        }
    }
}

/// One package under one policy and role, ready to score: shared by every driver and thread
/// that scores with it (cloning is cheap).
#[derive(Clone)]
pub struct PreparedModel {
    inner: Arc<Prepared>,
}

struct Prepared {
    facts: ModelFacts,
    grant: Grant,
    policy: Policy,
    template: Arc<ScorerTemplate>,
    compile: CacheOutcome,
    compile_time: Duration,
}

// Every driver hands a prepared model to its threads.
const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<PreparedModel>();
};

impl PreparedModel {
    /// A new sandbox instance of the model that stops at `deadline`.
    pub fn scorer(&self, deadline: Instant) -> Result<Scorer, ScoreError> {
        self.inner.template.scorer(deadline)
    }

    pub fn grant(&self) -> &Grant {
        &self.inner.grant
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The manifest's column domains and the policy's choice for values outside them.
    pub fn domains(&self) -> &crate::sandbox::domain::DomainCheck {
        &self.inner.template.domains
    }

    /// What the package is and who signed it.
    pub fn facts(&self) -> &ModelFacts {
        &self.inner.facts
    }

    /// Whether the component came from the compile cache, and how long getting it took.
    pub fn compile(&self) -> (&CacheOutcome, Duration) {
        (&self.inner.compile, self.inner.compile_time)
    }
}

impl Runtime {
    /// Admits and prepares the request's package under its policy, for a driver that scores
    /// many batches with it (the batch run does the same steps with its audit trail between).
    pub fn prepare_model(&self, request: &RunRequest) -> Result<PreparedModel, RunError> {
        let policy = Policy::load(&request.policy, &request.base_dir)?;
        let (package, signature) = self.load_verified(request, &policy)?;
        let admitted = self.admit(package, signature, &policy, request.role.as_deref())?;
        self.prepare(admitted)
    }

    /// Loads the package, checks its signature against the policy's `[trust]` (an unsigned
    /// package passes only with `allow_unsigned`), and returns it with what was verified.
    pub fn load_verified(
        &self,
        request: &RunRequest,
        policy: &Policy,
    ) -> Result<(Package, Option<Verified>), RunError> {
        let package = Package::load(&request.package_dir)?;
        let trusted = policy.trusted_keys(&package.manifest.publisher);
        let signature = match signing::verify(&package, trusted) {
            Ok(verified) => Some(verified),
            Err(VerifyError::Unsigned { .. }) if request.allow_unsigned => None,
            Err(error) => return Err(error.into()),
        };
        Ok((package, signature))
    }

    /// Checks a verified package's component and graphs, and resolves what `policy` grants it
    /// for the request's role.
    pub fn admit(
        &self,
        package: Package,
        signature: Option<Verified>,
        policy: &Policy,
        role: Option<&str>,
    ) -> Result<Admitted, RunError> {
        let contract = check_component(&package)?;
        if !self.skip_graph_admission {
            admit_graphs(&package, &policy.admission_rules())?;
        }
        let grant = Grant::resolve(&package.manifest, policy, role)?;
        Ok(Admitted {
            package,
            signature,
            grant,
            policy: policy.clone(),
            contract,
        })
    }

    /// Compiles (or loads from the cache) the admitted package's component, loads its graphs
    /// as the policy lets them run, and links it to this host's imports.
    pub fn prepare(&self, admitted: Admitted) -> Result<PreparedModel, RunError> {
        let facts = ModelFacts::of(&admitted.package, admitted.signature.as_ref());
        let Admitted {
            package,
            grant,
            policy,
            contract,
            ..
        } = admitted;
        let policy = &policy;
        let compile_started = Instant::now();
        let (component, compile) = self
            .cache
            .load(&self.engine.engine, &package.digest(), &package.component)
            .map_err(|e| RunError::Compile(e.into()))?;
        let compile_time = compile_started.elapsed();

        let graphs = Arc::new(self.load_graphs(&package, &grant, policy)?);
        let linker = sandbox::linker(&self.engine.engine).map_err(|e| RunError::Link(e.into()))?;
        let pre = sandbox::ModelPre::new(&linker, &component, contract)
            .map_err(|e| RunError::Link(e.into()))?;
        let template = ScorerTemplate {
            engine: self.engine.engine.clone(),
            pre,
            graphs,
            guest_graphs: self.guest_graphs(policy),
            jail: self.jail(policy),
            limits: policy.limits.clone(),
            mode: grant.input.mode,
            output: grant.output.clone(),
            domains: crate::sandbox::domain::DomainCheck::new(&grant.input),
            settings: sandbox::GuestSettings::new(&grant.settings),
            encoders: sandbox::GuestEncoders::new(&package.manifest.encoders),
        };
        Ok(PreparedModel {
            inner: Arc::new(Prepared {
                facts,
                grant,
                policy: policy.clone(),
                template: Arc::new(template),
                compile,
                compile_time,
            }),
        })
    }

    /// Graphs a guest may build from bytes of its own: on the CPU, under the same admission.
    fn guest_graphs(&self, policy: &Policy) -> Option<GuestGraphs> {
        match (&self.onnxruntime, policy.inference.allow_guest_graphs) {
            (Some(runtime), true) => Some(GuestGraphs {
                runtime: runtime.clone(),
                options: SessionOptions {
                    device: Device::Cpu,
                    threads: policy.inference.threads,
                },
                admission: policy.admission_rules(),
            }),
            _ => None,
        }
    }

    /// How each instance's inference worker is started, when graphs run in a jail.
    fn jail(&self, policy: &Policy) -> Option<JailConfig> {
        match (&self.onnxruntime, policy.inference.isolation) {
            (Some(runtime), Isolation::Jail) => Some(JailConfig {
                worker_exe: self.inference_worker.clone(),
                onnxruntime: runtime.library.clone(),
                inference_memory: policy.limits.inference_memory.bytes(),
                region_bytes: policy.limits.tensor_bytes.bytes(),
            }),
            _ => None,
        }
    }

    /// The package's graphs as the policy lets them run, each loaded once per process.
    fn load_graphs(
        &self,
        package: &Package,
        grant: &Grant,
        policy: &Policy,
    ) -> Result<GraphRegistry, RunError> {
        let mut registry = GraphRegistry::new();
        if grant.graphs.is_empty() {
            return Ok(registry);
        }
        let onnxruntime = self.onnxruntime.as_ref().ok_or(RunError::NoOnnxRuntime)?;
        for (granted, packaged) in grant.graphs.iter().zip(&package.graphs) {
            let options = SessionOptions {
                device: granted.device,
                threads: policy.inference.threads,
            };
            let name = granted.spec.name.as_str();
            if policy.inference.isolation == Isolation::Jail {
                // Sessions are made in each instance's worker, never in this process.
                let graph = LoadedGraph::for_worker(
                    onnxruntime,
                    name,
                    Arc::clone(&packaged.bytes),
                    options,
                );
                registry.insert(name.to_string(), Arc::new(graph));
                continue;
            }
            let key = (packaged.sha256.clone(), options);
            let cached = self
                .graphs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .cloned();
            let graph = match cached {
                Some(graph) => graph,
                None => {
                    let graph = Arc::new(LoadedGraph::load(
                        onnxruntime,
                        name,
                        Arc::clone(&packaged.bytes),
                        options,
                    )?);
                    self.graphs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, Arc::clone(&graph));
                    graph
                }
            };
            registry.insert(name.to_string(), graph);
        }
        Ok(registry)
    }
}

/// Reads what the component imports and exports before it is compiled: a model that asks for
/// the network, or for anything this host does not offer, never gets that far.
/// Returns the contract version the component speaks.
fn check_component(package: &Package) -> Result<&'static str, RunError> {
    let refused = |why| RunError::Component {
        package: package.path.display().to_string(),
        component: package.manifest.component.clone(),
        why,
    };
    let world = ComponentWorld::read(&package.component).map_err(refused)?;
    world.check(package.manifest.input.mode).map_err(refused)?;
    let version = world
        .contract_version()
        .unwrap_or(crate::world::CONTRACT_VERSION);
    // A model of a contract without settings could not read what the policy sets.
    if !package.manifest.settings.is_empty() && crate::world::WITHOUT_SETTINGS.contains(&version) {
        return Err(RunError::SettingsUnreadable {
            package: package.path.display().to_string(),
            version,
        });
    }
    // Nor could it read the encoders the package ships.
    if !package.manifest.encoders.is_empty() && crate::world::WITHOUT_ENCODERS.contains(&version) {
        return Err(RunError::EncodersUnreadable {
            package: package.path.display().to_string(),
            version,
        });
    }
    Ok(version)
}

/// Refuses the package if graph admission refuses any of its graphs.
pub(crate) fn admit_graphs(package: &Package, rules: &AdmissionRules) -> Result<(), RunError> {
    for graph in &package.graphs {
        let refusals = match graph_info::read(&graph.bytes) {
            Ok(info) => graph_info::admit(&info, rules)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(error) => vec![error.to_string()],
        };
        if !refusals.is_empty() {
            return Err(RunError::GraphRefused {
                graph: graph.spec.name.to_string(),
                why: refusals.join("; "),
            });
        }
    }
    Ok(())
}
