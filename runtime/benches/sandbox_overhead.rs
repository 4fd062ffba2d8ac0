//! Benchmark: what the sandbox costs over running the same model natively, and how fast an
//! instance starts. Figures for BENCHMARKS.md, never pass/fail.
//!
//! - **Overhead**: the churn guest scoring batches inside the sandbox (the batch copied in,
//!   features encoded in the guest, the graph run through wasi:nn on the host, the scores copied
//!   out) against the same feature encoding (the guest crate's own code, compiled natively) and
//!   the same ONNX Runtime session pool (`LoadedGraph`, one thread) called directly from Rust.
//!   Three graphs with the same interface (gradient-boosted trees, an MLP, logistic regression)
//!   at 256, 4,096 and 65,536 rows per batch, 262,144 Telco rows per pass. Input batches are
//!   prepared before the clock starts on both sides, and each side owns its batches and drops
//!   each one inside the clock once scored, as a streaming run does. Each figure is the median
//!   of the passes, guest and native alternating, and the ratio is taken within each pass.
//! - **The inference jail**: the same guest with its graph in a jailed inference worker (the
//!   default isolation), against the in-process graph above, in the same passes.
//! - **Fuel metering**: the logistic-regression pass on two engines that differ only in
//!   `consume_fuel`, to see what CPU limits by fuel cost.
//! - **Native split**: at 4,096 rows per batch, how the native side's time divides between the
//!   feature encoding and the graph: the encoding is the part the guest runs as WebAssembly.
//! - **Instantiation**: p50 and p99 of `Instance::new` from one `InstancePre` on the pooling
//!   allocator, a fresh store each time, as every run's instances start.
//!
//! - **CUDA**: with `CORDON_BENCH_GPU` set (and ONNX Runtime from the `onnxruntime-gpu` wheel,
//!   `scripts/setup.sh --gpu`), the MLP and logistic-regression graphs also run on CUDA, guest and
//!   native, and each is compared with the same graph on the CPU in the same run.
//!
//! `cargo bench -p cordon-runtime --bench sandbox_overhead` (or `scripts/bench.sh`);
//! `CORDON_BENCH_PASSES` changes the number of passes (default 5). Writes
//! `target/bench/sandbox_overhead.json`.
//!
//! **Profiling the guest**: `CORDON_BENCH_PROFILE=1` runs only the guest on the logistic-
//! regression graph (batch 4,096, 60 passes) on an engine that writes `/tmp/perf-<pid>.map`,
//! so that `perf record -g` names the JIT-compiled guest functions; `CORDON_BENCH_GUEST` points
//! at another build of the churn component (one built with `CARGO_PROFILE_GUEST_STRIP=false`
//! keeps its function names). BENCHMARKS.md shows the commands.

// A benchmark stops on a broken setup: that is its failure, with its reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon::data::{Batch, Column, ColumnValues, TextValues};
use cordon::manifest::Device;
use cordon::nn::jail::JailConfig;
use cordon::nn::onnx::{LoadedGraph, OnnxRuntime, SessionOptions};
use cordon::nn::{ElementType, GraphRegistry, NnState, Tensor};
use cordon::sandbox::bindings::cordon::model::types as wit;
use cordon::sandbox::{
    CompileCache, GuestState, Instance, SandboxEngine, bindings, linker, to_wit,
};
use cordon_guest::BatchBuilder;
use cordon_test_guests::{CHURN_MODEL, onnxruntime_library, root};

const ROWS: usize = 262_144;
const BATCH_SIZES: [usize; 3] = [256, 4_096, 65_536];
/// (what the report calls it, file under examples/churn/graphs/, whether it also runs on CUDA
/// with `CORDON_BENCH_GPU` set). The trees do not: ONNX Runtime has no CUDA kernel for them, so
/// they would run on the CPU anyway.
const GRAPHS: [(&str, &str, bool); 3] = [
    ("gradient-boosted trees", "churn_gbt.onnx", false),
    ("MLP (64, 32)", "churn_mlp.onnx", true),
    ("logistic regression", "churn_logreg.onnx", true),
];
const INSTANTIATIONS: usize = 2_000;
/// The batch size of the targets, for the native split, fuel metering and the profile.
const SPLIT_BATCH_ROWS: usize = 4_096;
const PROFILE_PASSES: usize = 60;
/// Fuel and memory large enough never to stop a pass.
const FUEL: u64 = u64::MAX / 4;
const GUEST_MEMORY: u64 = 1 << 30;

/// The ten columns the churn model reads, for every Telco row, repeated to `rows`.
fn telco_batch(rows: usize) -> Result<Batch, Box<dyn Error>> {
    let mut reader = csv::Reader::from_path(root().join("examples/churn/data/telco_churn.csv"))?;
    let headers = reader.headers()?.clone();
    let records: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    let field = |record: &csv::StringRecord, name: &str| -> String {
        headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| record.get(i))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let cycle = || records.iter().cycle().take(rows);
    let int = |name: &str| -> Result<Column, Box<dyn Error>> {
        let values = cycle()
            .map(|r| field(r, name).parse::<i64>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(column(name, ColumnValues::Int64(values), Vec::new()))
    };
    let text = |name: &str| {
        let values: Vec<String> = cycle().map(|r| field(r, name)).collect();
        let values = TextValues::from_strs(values.iter().map(String::as_str)).unwrap();
        column(name, ColumnValues::Text(values), Vec::new())
    };
    let monthly = cycle()
        .map(|r| field(r, "MonthlyCharges").parse::<f64>())
        .collect::<Result<Vec<_>, _>>()?;
    // TotalCharges is blank for customers not billed yet: null, as the data plane reads it.
    let total: Vec<Option<f64>> = cycle()
        .map(|r| field(r, "TotalCharges").parse::<f64>().ok())
        .collect();
    let columns = vec![
        renamed(int("tenure")?, "tenure"),
        column(
            "monthly_charges",
            ColumnValues::Float64(monthly),
            Vec::new(),
        ),
        column(
            "total_charges",
            ColumnValues::Float64(total.iter().map(|v| v.unwrap_or(0.0)).collect()),
            total.iter().map(Option::is_some).collect(),
        ),
        renamed(int("SeniorCitizen")?, "senior_citizen"),
        renamed(text("Contract"), "contract"),
        renamed(text("PaymentMethod"), "payment_method"),
        renamed(text("InternetService"), "internet_service"),
        renamed(text("PaperlessBilling"), "paperless_billing"),
        renamed(text("TechSupport"), "tech_support"),
        renamed(text("OnlineSecurity"), "online_security"),
    ];
    Ok(Batch {
        num_rows: rows,
        columns,
    })
}

fn column(name: &str, values: ColumnValues, validity: Vec<bool>) -> Column {
    Column {
        name: name.to_owned(),
        values,
        validity,
    }
}

fn renamed(mut column: Column, name: &str) -> Column {
    column.name = name.to_owned();
    column
}

/// Rows `start..start + len` of every column.
fn slice(batch: &Batch, start: usize, len: usize) -> Batch {
    let end = (start + len).min(batch.num_rows);
    let columns = batch
        .columns
        .iter()
        .map(|c| {
            let values = match &c.values {
                ColumnValues::Int64(v) => ColumnValues::Int64(v[start..end].to_vec()),
                ColumnValues::Float64(v) => ColumnValues::Float64(v[start..end].to_vec()),
                // By index: skipping through `iter()` would walk every earlier row per slice.
                ColumnValues::Text(v) => ColumnValues::Text(
                    TextValues::from_strs((start..end).map(|row| v.get(row).unwrap_or_default()))
                        .unwrap(),
                ),
                other => other.clone(),
            };
            let validity = if c.validity.is_empty() {
                Vec::new()
            } else {
                c.validity[start..end].to_vec()
            };
            column(&c.name, values, validity)
        })
        .collect();
    Batch {
        num_rows: end - start,
        columns,
    }
}

/// The same rows as the guest SDK's batch, for the native path.
fn sdk_batch(batch: &Batch) -> cordon_guest::Batch {
    let mut builder = BatchBuilder::new();
    for c in &batch.columns {
        let valid = |i: usize| c.validity.is_empty() || c.validity[i];
        builder = match &c.values {
            ColumnValues::Int64(v) => builder.i64(&c.name, v.clone()),
            ColumnValues::Float64(v) => builder.nullable_f64(
                &c.name,
                v.iter()
                    .enumerate()
                    .map(|(i, x)| valid(i).then_some(*x))
                    .collect(),
            ),
            ColumnValues::Text(v) => builder.text(&c.name, v.iter().map(str::to_owned).collect()),
            _ => builder,
        };
    }
    builder.build().expect("a well-formed batch")
}

/// Native: encode with the guest crate's code, run the graph, take P(churn).
fn score_natively(graph: &LoadedGraph, batch: &cordon_guest::Batch) -> Vec<f64> {
    let features = churn_model::features::encode_batch(batch).expect("features");
    let rows = batch.num_rows();
    let tensor = Tensor {
        dimensions: vec![rows as u32, churn_model::features::FEATURE_COUNT as u32],
        ty: ElementType::F32,
        // One copy of the values' memory, as the guest hands its tensor over (little-endian).
        data: bytemuck::cast_slice(&features).to_vec(),
    };
    let outputs = graph
        .compute(vec![("features".to_owned(), tensor)])
        .expect("the graph runs");
    let (_, probabilities) = outputs
        .iter()
        .find(|(name, _)| name == "probabilities")
        .expect("probabilities");
    probabilities
        .data
        .chunks_exact(8)
        .map(|pair| f64::from(f32::from_le_bytes(pair[4..8].try_into().unwrap())))
        .collect()
}

/// The churn guest on an engine of its own, called directly (no `Instance` bookkeeping): with
/// or without fuel metering, with or without a profiler.
fn direct_guest(
    wasm: &[u8],
    registry: Arc<GraphRegistry>,
    fuel: bool,
    profiler: wasmtime::ProfilingStrategy,
) -> Result<(wasmtime::Store<GuestState>, bindings::Model), Box<dyn Error>> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(fuel)
        .epoch_interruption(true)
        .profiler(profiler);
    let engine = wasmtime::Engine::new(&config)?;
    let component = wasmtime::component::Component::new(&engine, wasm)?;
    let pre = bindings::ModelPre::new(linker(&engine)?.instantiate_pre(&component)?)?;
    let state = GuestState::new(NnState::new(registry, None, GUEST_MEMORY), GUEST_MEMORY);
    let mut store = wasmtime::Store::new(&engine, state);
    if fuel {
        store.set_fuel(FUEL)?;
    }
    store.set_epoch_deadline(u64::MAX / 4);
    let model = pre.instantiate(&mut store)?;
    Ok((store, model))
}

/// One of the churn graphs, loaded and registered under the name the guest asks for
/// (`churn_gbt`): every graph here has its interface.
fn churn_graph(
    onnxruntime: &OnnxRuntime,
    options: SessionOptions,
    file: &str,
) -> Result<(Arc<LoadedGraph>, Arc<GraphRegistry>), Box<dyn Error>> {
    let bytes: Arc<[u8]> = std::fs::read(root().join("examples/churn/graphs").join(file))?.into();
    let graph = Arc::new(LoadedGraph::load(onnxruntime, "churn_gbt", bytes, options)?);
    let registry: Arc<GraphRegistry> =
        Arc::new([("churn_gbt".to_owned(), Arc::clone(&graph))].into());
    Ok((graph, registry))
}

/// One pass of the guest over its own copy of `batches`, each batch freed inside the clock once
/// scored: (seconds, sum of the scores).
fn guest_pass(instance: &mut Instance, batches: &[Batch]) -> Result<(f64, f64), Box<dyn Error>> {
    let inputs = batches.to_vec();
    let started = Instant::now();
    let mut checksum = 0.0;
    for batch in inputs {
        let output = instance
            .score(batch, FUEL, Instant::now() + Duration::from_secs(3600))
            .map_err(|e| format!("the guest failed: {e:?}"))?;
        if let Some(ColumnValues::Float64(p)) = output.columns.first().map(|c| &c.values) {
            checksum += p.iter().sum::<f64>();
        }
    }
    Ok((started.elapsed().as_secs_f64(), checksum))
}

/// The same graph registered for inference workers (no session in this process), and the
/// guest's instance whose graphs run in its jailed worker.
fn jailed_instance(
    engine: &wasmtime::Engine,
    pre: &cordon::sandbox::ModelPre,
    onnxruntime: &OnnxRuntime,
    options: SessionOptions,
    file: &str,
    deadline: Instant,
) -> Result<Instance, Box<dyn Error>> {
    let bytes: Arc<[u8]> = std::fs::read(root().join("examples/churn/graphs").join(file))?.into();
    let graph = LoadedGraph::for_worker(onnxruntime, "churn_gbt", bytes, options);
    let registry: Arc<GraphRegistry> = Arc::new([("churn_gbt".to_owned(), Arc::new(graph))].into());
    let jail = JailConfig {
        worker_exe: env!("CARGO_BIN_EXE_cordon").into(),
        onnxruntime: onnxruntime.library.clone(),
        inference_memory: 1 << 30,
        region_bytes: GUEST_MEMORY,
    };
    let mut nn = NnState::new(registry, None, GUEST_MEMORY).jailed(jail);
    nn.deadline = deadline;
    nn.start_worker()?;
    Ok(Instance::new(
        engine,
        pre,
        GuestState::new(nn, GUEST_MEMORY),
        FUEL,
        deadline,
    )?)
}

/// The whole table in the contract's types, `SPLIT_BATCH_ROWS` rows per batch, for calling the
/// guest directly.
fn wit_batches(table: &Batch) -> Vec<wit::Batch> {
    (0..ROWS)
        .step_by(SPLIT_BATCH_ROWS)
        .map(|start| to_wit(slice(table, start, SPLIT_BATCH_ROWS)))
        .collect()
}

/// Where the native side's time goes on `batches`: (whole, encoding), ns per row, medians.
fn native_split(graph: &LoadedGraph, batches: &[cordon_guest::Batch], passes: usize) -> (f64, f64) {
    let (mut encode_times, mut whole_times) = (Vec::new(), Vec::new());
    for _ in 0..passes {
        let (mut encode, mut whole) = (Duration::ZERO, Duration::ZERO);
        for batch in batches {
            let started = Instant::now();
            std::hint::black_box(churn_model::features::encode_batch(batch).expect("features"));
            encode += started.elapsed();
            let started = Instant::now();
            std::hint::black_box(score_natively(graph, batch));
            whole += started.elapsed();
        }
        encode_times.push(encode.as_secs_f64() * 1e9 / ROWS as f64);
        whole_times.push(whole.as_secs_f64() * 1e9 / ROWS as f64);
    }
    (median(&mut whole_times), median(&mut encode_times))
}

/// The guest alone on the logistic-regression graph, on an engine with wasmtime's perf map,
/// for `perf record`: the graph costs least there, so the guest's own work shows most.
fn profile_guest(
    onnxruntime: &OnnxRuntime,
    options: SessionOptions,
    table: &Batch,
    wasm: &[u8],
) -> Result<(), Box<dyn Error>> {
    let (_, registry) = churn_graph(onnxruntime, options, "churn_logreg.onnx")?;
    let (mut store, model) =
        direct_guest(wasm, registry, true, wasmtime::ProfilingStrategy::PerfMap)?;
    let batches = wit_batches(table);
    let started = Instant::now();
    for _ in 0..PROFILE_PASSES {
        for input in &batches {
            model
                .cordon_model_scorer()
                .call_score(&mut store, input)?
                .map_err(|e| format!("the guest failed: {e:?}"))?;
        }
    }
    let rows = (PROFILE_PASSES * ROWS) as f64;
    eprintln!(
        "profile: {rows} rows through the guest at {:.0} rows/s; perf map /tmp/perf-{}.map",
        rows / started.elapsed().as_secs_f64(),
        std::process::id()
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() -> Result<(), Box<dyn Error>> {
    let passes: usize = std::env::var("CORDON_BENCH_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5)
        .max(1);
    let onnxruntime = OnnxRuntime::load(&onnxruntime_library())?;
    let engine = SandboxEngine::new()?;
    let cache_dir = tempfile::tempdir()?;
    // Relative to the repository root (cargo runs a bench in its package's directory).
    let guest_path = root().join(std::env::var("CORDON_BENCH_GUEST").unwrap_or(CHURN_MODEL.into()));
    let wasm = std::fs::read(&guest_path).map_err(|e| format!("{}: {e}", guest_path.display()))?;
    let profiling = std::env::var_os("CORDON_BENCH_PROFILE").is_some();
    let (component, _) = CompileCache::new(Some(cache_dir.path().to_owned()))?.load(
        &engine.engine,
        "bench",
        &wasm,
    )?;
    let pre: cordon::sandbox::ModelPre =
        bindings::ModelPre::new(linker(&engine.engine)?.instantiate_pre(&component)?)?.into();
    let options = SessionOptions {
        device: Device::Cpu,
        threads: 1,
    };
    // Every graph on the CPU first, so that each CUDA figure can be set against the CPU's.
    let mut configurations: Vec<(&str, &str, Device)> = GRAPHS
        .iter()
        .map(|&(label, file, _)| (label, file, Device::Cpu))
        .collect();
    if std::env::var_os("CORDON_BENCH_GPU").is_some() {
        configurations.extend(
            GRAPHS
                .iter()
                .filter(|&&(_, _, on_cuda)| on_cuda)
                .map(|&(label, file, _)| (label, file, Device::Gpu)),
        );
    }
    let deadline = || Instant::now() + Duration::from_secs(3600);
    let table = telco_batch(ROWS)?;

    if profiling {
        return profile_guest(&onnxruntime, options, &table, &wasm);
    }

    let mut overhead = Vec::new();
    let mut native_splits = Vec::new();
    // The guest's rows/s on the CPU by (graph, batch rows), and CUDA's against it.
    let mut guest_on_cpu = std::collections::HashMap::new();
    let mut cuda_over_cpu = Vec::new();
    for (label, file, device) in configurations {
        let options = SessionOptions { device, ..options };
        let (graph, registry) = churn_graph(&onnxruntime, options, file)?;
        for batch_rows in BATCH_SIZES {
            let batches: Vec<Batch> = (0..ROWS)
                .step_by(batch_rows)
                .map(|start| slice(&table, start, batch_rows))
                .collect();
            let native_batches: Vec<cordon_guest::Batch> = batches.iter().map(sdk_batch).collect();
            let mut instance = Instance::new(
                &engine.engine,
                &pre,
                GuestState::new(
                    NnState::new(Arc::clone(&registry), None, GUEST_MEMORY),
                    GUEST_MEMORY,
                ),
                FUEL,
                deadline(),
            )?;
            let mut jailed = jailed_instance(
                &engine.engine,
                &pre,
                &onnxruntime,
                options,
                file,
                deadline(),
            )?;
            let (mut guest_rates, mut native_rates, mut ratios) =
                (Vec::new(), Vec::new(), Vec::new());
            let (mut jailed_rates, mut jail_ratios, mut jailed_ratios) =
                (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..passes {
                let (guest, checksum) = guest_pass(&mut instance, &batches)?;
                // The same guest, its graph in the jailed worker.
                let (jailed_time, jailed_checksum) = guest_pass(&mut jailed, &batches)?;
                assert!(
                    (checksum - jailed_checksum).abs() < 1e-6 * ROWS as f64,
                    "in-process and jailed disagree: {checksum} vs {jailed_checksum}"
                );

                // Owned, like the guest side's: `Instance::score` consumes its batch and frees
                // it inside the clock, so the native side frees each batch there too.
                let native_inputs = native_batches.clone();
                let started = Instant::now();
                let mut native_checksum = 0.0;
                for batch in native_inputs {
                    native_checksum += score_natively(&graph, &batch).iter().sum::<f64>();
                }
                let native = started.elapsed().as_secs_f64();
                // Same rows, same graph: the same scores, or the comparison means nothing.
                assert!(
                    (checksum - native_checksum).abs() < 1e-6 * ROWS as f64,
                    "guest and native disagree: {checksum} vs {native_checksum}"
                );
                guest_rates.push(ROWS as f64 / guest);
                native_rates.push(ROWS as f64 / native);
                ratios.push(guest / native);
                jailed_rates.push(ROWS as f64 / jailed_time);
                jail_ratios.push(jailed_time / guest);
                jailed_ratios.push(jailed_time / native);
            }
            let (guest, native, ratio) = (
                median(&mut guest_rates),
                median(&mut native_rates),
                median(&mut ratios),
            );
            let (jailed_rate, jail_ratio, jailed_ratio) = (
                median(&mut jailed_rates),
                median(&mut jail_ratios),
                median(&mut jailed_ratios),
            );
            eprintln!(
                "{label:<24} {device} batch {batch_rows:>6}: guest {guest:>10.0} rows/s, native {native:>10.0} rows/s, guest/native time {ratio:.3}; jailed {jailed_rate:>10.0} rows/s, jailed/in-process time {jail_ratio:.3}, jailed/native {jailed_ratio:.3}"
            );
            overhead.push(serde_json::json!({
                "graph": label,
                "device": device,
                "batch_rows": batch_rows,
                "guest_rows_per_second": guest,
                "native_rows_per_second": native,
                "guest_over_native_time": ratio,
                "jailed_guest_rows_per_second": jailed_rate,
                "jailed_over_in_process_time": jail_ratio,
                "jailed_over_native_time": jailed_ratio,
            }));
            match device {
                Device::Cpu => {
                    guest_on_cpu.insert((label, batch_rows), guest);
                }
                Device::Gpu => {
                    let on_cpu = guest_on_cpu[&(label, batch_rows)];
                    eprintln!(
                        "{label:<24} batch {batch_rows:>6}: guest on CUDA {guest:.0} rows/s, on the CPU {on_cpu:.0} rows/s ({:.2}x)",
                        guest / on_cpu
                    );
                    cuda_over_cpu.push(serde_json::json!({
                        "graph": label, "batch_rows": batch_rows,
                        "guest_rows_per_second_cuda": guest,
                        "guest_rows_per_second_cpu": on_cpu,
                        "cuda_over_cpu": guest / on_cpu,
                    }));
                }
            }

            // Where the native side's time goes, at the batch size of the targets.
            if batch_rows == SPLIT_BATCH_ROWS {
                let (whole, encode) = native_split(&graph, &native_batches, passes);
                eprintln!(
                    "{label:<24} {device} native, batch {SPLIT_BATCH_ROWS}: {whole:.1} ns/row, of which encoding {encode:.1} ns/row ({:.0}%)",
                    100.0 * encode / whole
                );
                native_splits.push(serde_json::json!({
                    "graph": label,
                    "device": device,
                    "batch_rows": SPLIT_BATCH_ROWS,
                    "native_ns_per_row": whole,
                    "encoding_ns_per_row": encode,
                }));
            }
        }
    }

    // What fuel metering costs: the same guest, graph and batches on two engines that differ
    // only in `consume_fuel`, called directly (no Instance bookkeeping on either side).
    let (_, registry) = churn_graph(&onnxruntime, options, "churn_logreg.onnx")?;
    let batches = wit_batches(&table);
    let mut metered = Vec::new();
    for fuel in [true, false] {
        let (mut store, model) = direct_guest(
            &wasm,
            Arc::clone(&registry),
            fuel,
            wasmtime::ProfilingStrategy::None,
        )?;
        let mut rates = Vec::new();
        for _ in 0..passes {
            let inputs = batches.clone();
            let started = Instant::now();
            for input in &inputs {
                model
                    .cordon_model_scorer()
                    .call_score(&mut store, input)?
                    .map_err(|e| format!("the guest failed: {e:?}"))?;
            }
            rates.push(ROWS as f64 / started.elapsed().as_secs_f64());
        }
        metered.push(median(&mut rates));
    }
    let (with_fuel, without_fuel) = (metered[0], metered[1]);
    eprintln!(
        "fuel metering (logistic regression, batch {SPLIT_BATCH_ROWS}): {with_fuel:.0} rows/s with fuel, {without_fuel:.0} without ({:.3}x)",
        without_fuel / with_fuel
    );

    // Instantiation from the InstancePre, as each run's instances start.
    let registry: Arc<GraphRegistry> = Arc::new(GraphRegistry::new());
    let mut times = Vec::with_capacity(INSTANTIATIONS);
    for _ in 0..INSTANTIATIONS {
        let state = GuestState::new(
            NnState::new(Arc::clone(&registry), None, GUEST_MEMORY),
            256 << 20,
        );
        let started = Instant::now();
        let instance = Instance::new(&engine.engine, &pre, state, FUEL, deadline())?;
        times.push(started.elapsed());
        drop(instance);
    }
    times.sort();
    let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));
    eprintln!(
        "instantiation ({INSTANTIATIONS}x): p50 {:.1} µs, p99 {:.1} µs",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );

    let report = serde_json::json!({
        "benchmark": "sandbox_overhead",
        "rows_per_pass": ROWS,
        "passes": passes,
        "onnxruntime_threads": 1,
        "overhead": overhead,
        "native_split": native_splits,
        "cuda_over_cpu": cuda_over_cpu,
        "fuel_metering": {
            "graph": "logistic regression",
            "batch_rows": SPLIT_BATCH_ROWS,
            "rows_per_second_with_fuel": with_fuel,
            "rows_per_second_without_fuel": without_fuel,
        },
        "instantiation": {
            "count": INSTANTIATIONS,
            "p50_us": p50.as_secs_f64() * 1e6,
            "p99_us": p99.as_secs_f64() * 1e6,
        },
    });
    let out = root().join("target/bench/sandbox_overhead.json");
    std::fs::create_dir_all(root().join("target/bench"))?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("sandbox_overhead: {}", out.display());
    Ok(())
}
