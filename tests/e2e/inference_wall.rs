//! The inference plane's wall: hostile graphs (tests/src/onnx_graphs.rs) and a hostile guest
//! against graph admission, the inference jail, and the run's deadline. Every test ends by
//! scoring the churn example in the same process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cordon::nn::jail::WorkerError;
use cordon::run::Quiet;
use cordon::{RunError, RunRequest, Runtime};
use cordon_test_guests::onnx_graphs;

use crate::support::{
    Case, PROBE_MANIFEST, assert_churn_still_scores, new_runtime, onnxruntime_library, probe_table,
    read_csv, root,
};

/// The probe manifest with one declared graph, `hostile`.
fn hostile_manifest() -> String {
    format!(
        "{PROBE_MANIFEST}\n[[graph]]\nname = \"hostile\"\nfile = \"graphs/hostile.onnx\"\nformat = \"onnx\"\ndevice = \"cpu\"\n"
    )
}

/// The probe policy with CPU inference allowed, an audit trail, and `limits` / `inference`
/// lines added to their tables.
fn hostile_policy(limits: &str, inference: &str) -> String {
    format!(
        "version = 1\n[limits]\n{limits}\n[inference]\ndevices = [\"cpu\"]\n{inference}\n[bind.rows]\nsource = \"input.csv\"\nkey = [\"id\"]\ncolumns = {{ x = \"x\" }}\n[emit.results]\nsink = \"out/results.csv\"\n[audit]\nlog = \"out/audit.jsonl\"\nusage = \"out/usage.jsonl\"\n"
    )
}

/// A case whose package runs `graph` as `hostile` through the nn-hostile-graph guest.
fn hostile_case(graph: &[u8], limits: &str, inference: &str) -> Case {
    let case = Case::new();
    let file = case.write("hostile.onnx", "");
    std::fs::write(&file, graph).unwrap();
    case.package(
        cordon_test_guests::NN_HOSTILE_GRAPH,
        &hostile_manifest(),
        &[("hostile.onnx", &file)],
    );
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &hostile_policy(limits, inference));
    case
}

/// A second runtime whose graph admission is off (the test hook), to show what the jail alone
/// does with a graph that got past it.
fn runtime_without_admission() -> &'static Runtime {
    static RUNTIME: OnceLock<(Runtime, tempfile::TempDir)> = OnceLock::new();
    &RUNTIME.get_or_init(|| new_runtime(true)).0
}

fn request(case: &Case) -> RunRequest {
    RunRequest {
        package_dir: case.path("package"),
        policy: case.path("policy.toml"),
        base_dir: case.dir.path().to_owned(),
        role: None,
        allow_unsigned: true,
    }
}

/// The audit log's events, in order.
fn audit_events(case: &Case) -> Vec<String> {
    std::fs::read_to_string(case.path("out/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["event"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The table a hostile graph would steal: the churn example's, key column and all.
fn telco_csv() -> PathBuf {
    root().join("examples/churn/data/telco_churn.csv")
}

/// Every place external data can hide, and every kind of location.
fn external_data_graphs(case_dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let relative = "examples/churn/data/telco_churn.csv";
    let absolute = telco_csv().display().to_string();
    let upward = format!(
        "{}/examples/churn/data/telco_churn.csv",
        "../".repeat(case_dir.components().count() + 1)
    );
    vec![
        (
            "relative",
            onnx_graphs::external_data_identity(relative, 64),
        ),
        (
            "absolute",
            onnx_graphs::external_data_identity(&absolute, 64),
        ),
        ("dot-dot", onnx_graphs::external_data_identity(&upward, 64)),
        (
            "memory address",
            onnx_graphs::external_data_identity("*/_ORT_MEM_ADDR_/*", 64),
        ),
        (
            "subgraph",
            onnx_graphs::external_data_in_subgraph(&absolute, 64),
        ),
        (
            "constant",
            onnx_graphs::external_data_in_constant(&absolute, 64),
        ),
        (
            "function",
            onnx_graphs::external_data_in_function(&absolute, 64),
        ),
    ]
}

#[test]
fn external_data_is_refused_at_inspect_check_and_run_naming_graph_and_tensor() {
    let probe = Case::new();
    for (variant, graph) in external_data_graphs(probe.dir.path()) {
        let case = hostile_case(&graph, "", "");

        let inspect = case.cordon(&["inspect", "package"]);
        let shown = String::from_utf8_lossy(&inspect.stdout);
        assert!(
            shown.contains("REFUSED") && shown.contains("`stolen`") && shown.contains("external"),
            "{variant}: inspect shows no refusal:\n{shown}"
        );

        let check = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(
            check.status.code(),
            Some(2),
            "{variant}: check passed: {stderr}"
        );
        assert!(
            stderr.contains("graph `hostile`") && stderr.contains("`stolen`"),
            "{variant}: {stderr}"
        );

        let error = case.run().unwrap_err();
        assert!(
            matches!(&error, RunError::GraphRefused { graph, why } if graph == "hostile" && why.contains("`stolen`")),
            "{variant}: {error}"
        );
        assert!(!case.path("out/results.csv").exists());
        let events = audit_events(&case);
        assert!(
            events.contains(&"denial".to_string()),
            "{variant}: {events:?}"
        );
        assert_eq!(events.last().map(String::as_str), Some("run-end"));
    }
    assert_churn_still_scores();
}

/// A graph with a text input (a whole scikit-learn pipeline) can never be fed through wasi:nn:
/// `cordon pack` refuses it before anything is signed, `inspect` shows its interface and the
/// refusal by tensor, and a run refuses it before ONNX Runtime sees it, instead of failing at
/// the first batch.
#[test]
fn a_graph_with_a_string_input_is_refused_at_pack_inspect_and_run() {
    let case = hostile_case(&onnx_graphs::string_input(), "", "");

    let pack = case.cordon(&["pack", "package", "--out", "dist"]);
    let stderr = String::from_utf8_lossy(&pack.stderr);
    assert_eq!(pack.status.code(), Some(2), "pack passed: {stderr}");
    assert!(
        stderr.contains("cannot pack: graph `hostile` (graphs/hostile.onnx): tensor `contract`: input is tensor(string), which wasi:nn cannot carry"),
        "{stderr}"
    );
    assert!(!case.path("dist").exists(), "nothing is written");
    assert_eq!(
        stderr.matches("cannot pack").count(),
        1,
        "said once: {stderr}"
    );

    let inspect = case.cordon(&["inspect", "package"]);
    let shown = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        shown.contains("  input       contract string [n]"),
        "{shown}"
    );
    assert!(
        shown.contains("  input       tenure float32 [n]"),
        "{shown}"
    );
    assert!(
        shown.contains("  output      probability float32 [n]"),
        "{shown}"
    );
    assert!(
        shown.contains("REFUSED     tensor `contract`: input is tensor(string)"),
        "{shown}"
    );

    let error = case.run().unwrap_err();
    assert!(
        matches!(&error, RunError::GraphRefused { graph, why } if graph == "hostile" && why.contains("`contract`")),
        "{error}"
    );
    assert!(!case.path("out/results.csv").exists());
}

#[test]
fn past_admission_the_jailed_worker_still_cannot_read_the_file() {
    let probe = Case::new();
    let secret = std::fs::read(telco_csv()).unwrap();
    let stolen_prefix = String::from_utf8_lossy(&secret[..24]).into_owned();
    for (variant, graph) in external_data_graphs(probe.dir.path()) {
        let case = hostile_case(&graph, "", "");
        let outcome = match runtime_without_admission().run(&request(&case), &Quiet) {
            Ok(_) => read_csv(&case.path("out/results.csv"))[0][1].clone(),
            Err(error) => format!("run refused: {error}"),
        };
        assert!(
            !outcome.contains(&stolen_prefix) && !outcome.contains("customerID"),
            "{variant}: the graph read the file: {outcome}"
        );
        // The worker refused to build the graph (its open was denied, or ONNX Runtime refused
        // the path): the run ended before the guest ran, and no byte reached it.
        assert!(
            outcome.contains("could not be loaded in the inference worker"),
            "{variant}: {outcome}"
        );
        // A path under the working directory is what ONNX Runtime itself would follow: there
        // it is the jail's filter that says no.
        if variant == "relative" {
            assert!(
                outcome.contains("Operation not permitted"),
                "{variant}: {outcome}"
            );
        }
    }
    assert_churn_still_scores();
}

#[test]
fn a_graph_that_allocates_8_gib_fails_with_the_inference_memory_error() {
    let case = hostile_case(
        &onnx_graphs::constant_of_shape(8 << 30),
        "inference-memory = \"256 MiB\"",
        "",
    );
    let error = case.run().unwrap_err();
    assert!(
        matches!(&error, RunError::Inference(WorkerError::Memory { .. })),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("limits.inference-memory"), "{message}");
    assert!(!case.path("out/results.csv").exists());
    assert_eq!(
        audit_events(&case).last().map(String::as_str),
        Some("run-end")
    );
    // The allocation was the worker's: this process never held 8 GiB.
    let peak = cordon::usage::process_peak_rss();
    eprintln!("host peak RSS after the 8 GiB graph: {} MiB", peak >> 20);
    assert!(peak < 4 << 30, "host peak RSS {} MiB", peak >> 20);
    assert_churn_still_scores();
}

/// Runs `case`, expecting the wall-time error within a second of `limit`.
fn assert_stopped_at_the_deadline(case: &Case, limit: Duration) {
    let started = Instant::now();
    let error = case.run().unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, RunError::WallTime { .. }), "{error}");
    assert!(
        took < limit + Duration::from_secs(1),
        "stopped after {took:?}, limit {limit:?}"
    );
    assert_eq!(
        audit_events(case).last().map(String::as_str),
        Some("run-end")
    );
}

#[test]
fn a_guest_asleep_in_a_host_call_ends_at_the_wall_time_limit() {
    let case = Case::new();
    case.package(
        cordon_test_guests::LIMITS_SLEEP_FOREVER,
        PROBE_MANIFEST,
        &[],
    );
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &hostile_policy("wall-time = \"2s\"", ""));
    assert_stopped_at_the_deadline(&case, Duration::from_secs(2));
    assert_churn_still_scores();
}

#[test]
fn an_endless_graph_loop_ends_at_the_wall_time_limit_jailed_or_not() {
    let graph = onnx_graphs::endless_loop(1 << 62);
    for isolation in ["jail", "in-process"] {
        let case = hostile_case(
            &graph,
            "wall-time = \"2s\"",
            &format!("isolation = \"{isolation}\""),
        );
        assert_stopped_at_the_deadline(&case, Duration::from_secs(2));
    }
    assert_churn_still_scores();
}

/// The pids of `parent`'s child processes.
fn children(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{parent}/task"))
        .unwrap()
        .flatten()
    {
        let listed = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(
            listed
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids
}

#[test]
fn a_worker_killed_mid_run_is_a_named_error_and_writes_nothing() {
    let case = hostile_case(
        &onnx_graphs::endless_loop(1 << 62),
        "wall-time = \"60s\"",
        "",
    );
    let cordon = case
        .command(&[
            "run",
            "--package",
            "package",
            "--policy",
            "policy.toml",
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the worker to be started and busy in the loop, then crash it.
    let started = Instant::now();
    let worker = loop {
        if let Some(&pid) = children(cordon.id()).first() {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no worker started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: sending a signal to a process this test's child started.
    assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGSEGV) }, 0);
    let output = cordon.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("inference worker died") && stderr.contains("SIGSEGV"),
        "{stderr}"
    );
    assert!(!case.path("out/results.csv").exists());
    assert_eq!(
        audit_events(&case).last().map(String::as_str),
        Some("run-end")
    );
    assert_churn_still_scores();
}

#[test]
fn a_jailed_run_says_so_and_scores_like_an_unjailed_one() {
    let graph = onnx_graphs::endless_loop(5);
    let mut outcomes = Vec::new();
    for isolation in ["jail", "in-process"] {
        let case = hostile_case(&graph, "", &format!("isolation = \"{isolation}\""));
        // The permissions screen and the check say where the graphs would run.
        let inspect = case.cordon(&["inspect", "package", "--policy", "policy.toml"]);
        let screen = String::from_utf8_lossy(&inspect.stdout);
        assert!(
            screen.contains(&format!("[inference] isolation = \"{isolation}\"")),
            "{screen}"
        );
        let check = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
        let checked = String::from_utf8_lossy(&check.stdout);
        let place = if isolation == "jail" {
            "jailed inference worker"
        } else {
            "in this process"
        };
        assert!(checked.contains(place), "{checked}");
        let summary = case.run().unwrap();
        assert!(
            summary.inference_isolation.starts_with(isolation),
            "{}",
            summary.inference_isolation
        );
        if isolation == "jail" {
            assert!(
                summary.inference_isolation.contains("seccomp on"),
                "{}",
                summary.inference_isolation
            );
        }
        outcomes.push(read_csv(&case.path("out/results.csv")));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    // x + 5 for the first row's x = 0, as float32 bytes.
    assert!(
        outcomes[0][0][1].starts_with("ran: y: 4 bytes"),
        "{:?}",
        outcomes[0]
    );
}

#[test]
fn the_cli_runs_jailed_with_a_relative_onnxruntime_path_and_says_so() {
    // The worker runs in `/`: the library path it is given must not depend on the host's
    // working directory.
    let case = hostile_case(&onnx_graphs::endless_loop(3), "instances = 2", "");
    std::fs::create_dir(case.path("lib")).unwrap();
    std::os::unix::fs::symlink(onnxruntime_library(), case.path("lib/libonnxruntime.so")).unwrap();
    let output = case
        .bare_command()
        .args(["run", "--package", "package", "--policy", "policy.toml"])
        .args(["--allow-unsigned", "--onnxruntime", "lib/libonnxruntime.so"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("isolation    jail (seccomp on, address space"),
        "{stdout}"
    );
    // Two instances, each with its own worker started side by side: both scored.
    let rows = read_csv(&case.path("out/results.csv"));
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|row| row[1].starts_with("ran: y: 4 bytes")),
        "{rows:?}"
    );
}

#[test]
fn onnx_runtime_threads_start_behind_the_filter() {
    // Sessions (and their intra-op thread pools) are made after the worker seals itself: with
    // two threads per session the pool's thread must start under the filter (clone3 refused,
    // clone with CLONE_THREAD allowed).
    let case = hostile_case(&onnx_graphs::endless_loop(7), "", "threads = 2");
    let summary = case.run().unwrap();
    assert!(
        summary.inference_isolation.contains("seccomp on"),
        "{}",
        summary.inference_isolation
    );
    assert!(read_csv(&case.path("out/results.csv"))[0][1].starts_with("ran: y: 4 bytes"));
}

#[test]
fn the_cuda_warm_up_graph_is_a_valid_graph() {
    // It only runs on GPU machines (before the worker seals itself); its bytes are checked
    // here, on the CPU, so that a broken encoding does not wait for a GPU to show.
    let bytes = cordon::nn::jail::worker::cuda_warm_up_graph();
    let info = cordon::nn::graph_info::read(&bytes).unwrap();
    assert!(cordon::nn::graph_info::admit(&info, &Default::default()).is_empty());
    let runtime = cordon::nn::onnx::OnnxRuntime::load(&onnxruntime_library()).unwrap();
    let options = cordon::nn::onnx::SessionOptions {
        device: cordon::manifest::Device::Cpu,
        threads: 1,
    };
    let graph =
        cordon::nn::onnx::LoadedGraph::load(&runtime, "warm-up", bytes.into(), options).unwrap();
    let input = cordon::nn::Tensor {
        dimensions: vec![1],
        ty: cordon::nn::ElementType::F32,
        data: 2.5f32.to_le_bytes().to_vec(),
    };
    let outputs = graph.compute(vec![("x".into(), input)]).unwrap();
    assert_eq!(outputs[0].0, "y");
    assert_eq!(outputs[0].1.data, 2.5f32.to_le_bytes());
}
