//! Benchmark: `cordon serve` under load on loopback, against a FastAPI + onnxruntime server on
//! the same graph and the same features (`benches/python/serve_baseline.py`, run with
//! `CORDON_BENCH_PYTHON`). Figures for BENCHMARKS.md, never pass/fail.
//!
//! Both servers get the same requests: Open Inference Protocol JSON with the Telco rows
//! (cycled), the churn example's gradient-boosted graph, policies/churn-serve.toml's limits
//! (2 instances, 1,024-row batches, one ONNX Runtime thread). Three loads, each
//! `CORDON_BENCH_SERVE_SECONDS` long (default 60), 16 clients on keep-alive connections:
//!
//! - single-row requests, closed loop (each client sends its next request on an answer);
//! - 1,024-row requests, closed loop;
//! - single-row requests, open loop at 1,000 requests/s in all (each client on a schedule of
//!   62.5 requests/s; latency counted from the scheduled time, so a server that falls behind
//!   is charged for the wait).
//!
//! Reports requests, failures, rows/s and latency p50/p99 for each, and writes
//! `target/bench/serve_load.json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cordon_test_guests::{CHURN_MODEL, onnxruntime_library, root};
use serde_json::json;

const CLIENTS: usize = 16;

fn seconds() -> f64 {
    std::env::var("CORDON_BENCH_SERVE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0)
}

/// The Telco table's request columns, as text cells.
fn telco_rows() -> Vec<Vec<String>> {
    let mut reader =
        csv::Reader::from_path(root().join("examples/churn/data/telco_churn.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let wanted = [
        "customerID",
        "tenure",
        "MonthlyCharges",
        "TotalCharges",
        "SeniorCitizen",
        "Contract",
        "PaymentMethod",
        "InternetService",
        "PaperlessBilling",
        "TechSupport",
        "OnlineSecurity",
    ];
    let positions: Vec<usize> = wanted
        .iter()
        .map(|w| headers.iter().position(|h| h == *w).unwrap())
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            positions.iter().map(|&p| r[p].to_string()).collect()
        })
        .collect()
}

/// An inference request body for rows `start..start + rows` of the table (cycled).
fn request_body(table: &[Vec<String>], start: usize, rows: usize) -> Vec<u8> {
    let cell = |row: usize, column: usize| table[(start + row) % table.len()][column].clone();
    let text = |column: usize| {
        (0..rows)
            .map(|r| json!(cell(r, column)))
            .collect::<Vec<_>>()
    };
    let int = |column: usize| {
        (0..rows)
            .map(|r| json!(cell(r, column).trim().parse::<i64>().unwrap()))
            .collect::<Vec<_>>()
    };
    let float = |column: usize| {
        (0..rows)
            .map(|r| json!(cell(r, column).trim().parse::<f64>().unwrap()))
            .collect::<Vec<_>>()
    };
    let tensor = |name: &str, datatype: &str, data: Vec<serde_json::Value>| json!({ "name": name, "datatype": datatype, "shape": [rows], "data": data });
    json!({
        "inputs": [
            tensor("customerID", "BYTES", text(0)),
            tensor("tenure", "INT64", int(1)),
            tensor("MonthlyCharges", "FP64", float(2)),
            tensor("TotalCharges", "BYTES", text(3)),
            tensor("SeniorCitizen", "INT64", int(4)),
            tensor("Contract", "BYTES", text(5)),
            tensor("PaymentMethod", "BYTES", text(6)),
            tensor("InternetService", "BYTES", text(7)),
            tensor("PaperlessBilling", "BYTES", text(8)),
            tensor("TechSupport", "BYTES", text(9)),
            tensor("OnlineSecurity", "BYTES", text(10)),
        ]
    })
    .to_string()
    .into_bytes()
}

/// A keep-alive HTTP/1.1 client connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// POSTs `body` and reads the answer; returns its status.
    fn post(&mut self, path: &str, token: &str, body: &[u8]) -> std::io::Result<u16> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(status)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct LoadResult {
    server: String,
    load: String,
    requests: u64,
    failed: u64,
    rows_per_s: f64,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `CLIENTS` clients for the benchmark's duration; `rate` (requests/s in all) makes it
/// an open loop.
fn load(
    server: &str,
    name: &str,
    address: SocketAddr,
    token: &str,
    rows: usize,
    rate: Option<f64>,
    table: &[Vec<String>],
) -> LoadResult {
    let duration = Duration::from_secs_f64(seconds());
    let bodies: Vec<Vec<u8>> = (0..64)
        .map(|i| request_body(table, i * rows, rows))
        .collect();
    let started = Instant::now();
    let end = started + duration;
    let results: Vec<(Vec<f64>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let bodies = &bodies;
                scope.spawn(move || {
                    let mut connection = Client::connect(address);
                    let mut latencies = Vec::new();
                    let mut failed = 0u64;
                    let interval = rate.map(|r| Duration::from_secs_f64(CLIENTS as f64 / r));
                    // Clients start spread over one interval, so they do not all send at once.
                    let mut scheduled = started
                        + interval.map_or(Duration::ZERO, |i| {
                            i.mul_f64(client as f64 / CLIENTS as f64)
                        });
                    for round in 0..10_000_000usize {
                        if interval.is_some() {
                            let now = Instant::now();
                            if scheduled > now {
                                std::thread::sleep(scheduled - now);
                            }
                        }
                        let from = if interval.is_some() {
                            scheduled
                        } else {
                            Instant::now()
                        };
                        // An open loop also stops at the end in wall time: for a server that
                        // fell behind, the requests it never took show as fewer requests (and
                        // rows/s) than the schedule's.
                        if from >= end || Instant::now() >= end {
                            break;
                        }
                        let body = &bodies[(client + round) % bodies.len()];
                        match connection.post("/v2/models/telco-churn/infer", token, body) {
                            Ok(200) => latencies.push(from.elapsed().as_secs_f64() * 1e3),
                            Ok(_) => failed += 1,
                            Err(_) => {
                                failed += 1;
                                connection = Client::connect(address);
                            }
                        }
                        if let Some(interval) = interval {
                            scheduled += interval;
                        }
                    }
                    (latencies, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results.iter().flat_map(|(l, _)| l.clone()).collect();
    let failed: u64 = results.iter().map(|(_, f)| f).sum();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    let requests = latencies.len() as u64;
    let result = LoadResult {
        server: server.to_string(),
        load: name.to_string(),
        requests,
        failed,
        rows_per_s: (requests as usize * rows) as f64 / elapsed,
        requests_per_s: requests as f64 / elapsed,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
    };
    eprintln!(
        "{server:>8} {name:<34} {:>9} requests, {:>3} failed, {:>10.0} rows/s, p50 {:>7.2} ms, p99 {:>7.2} ms",
        result.requests, result.failed, result.rows_per_s, result.p50_ms, result.p99_ms
    );
    result
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `address` takes connections.
fn wait_for(address: SocketAddr, child: &mut Child) -> Result<(), Box<dyn Error>> {
    for _ in 0..600 {
        if TcpStream::connect(address).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the server exited with {status}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the server did not start".into())
}

fn churn_package(dir: &Path) -> PathBuf {
    let example = root().join("examples/churn");
    let package = dir.join("package");
    std::fs::create_dir_all(package.join("graphs")).unwrap();
    std::fs::copy(example.join("cordon.toml"), package.join("cordon.toml")).unwrap();
    std::fs::copy(CHURN_MODEL, package.join("model.wasm")).unwrap();
    std::fs::copy(
        example.join("graphs/churn_gbt.onnx"),
        package.join("graphs/churn_gbt.onnx"),
    )
    .unwrap();
    package
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let package = churn_package(dir.path());
    let policy = std::fs::read_to_string(root().join("policies/churn-serve.toml"))?.replace(
        "\"policies/tokens/churn-serve.toml\"",
        &format!(
            "{:?}",
            root()
                .join("policies/tokens/churn-serve.toml")
                .display()
                .to_string()
        ),
    );
    std::fs::write(dir.path().join("policy.toml"), policy)?;
    let token = "cdn_example_retention_not_secret";
    let table = telco_rows();
    let loads: [(&str, usize, Option<f64>); 3] = [
        ("1 row, closed loop", 1, None),
        ("1,024 rows, closed loop", 1024, None),
        ("1 row, open loop at 1,000 req/s", 1, Some(1000.0)),
    ];
    let mut results = Vec::new();

    let mut cordon = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .current_dir(dir.path())
        .args(["serve", "--allow-unsigned", "--package"])
        .arg(&package)
        .args([
            "--policy",
            "policy.toml",
            "--listen",
            "127.0.0.1:0",
            "--onnxruntime",
        ])
        .arg(onnxruntime_library())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(cordon.stderr.take().ok_or("no stderr")?);
    let address: SocketAddr = loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Err("cordon serve ended before serving".into());
        }
        if let Some(rest) = line.strip_prefix("serving ") {
            let address = rest.split("://").nth(1).ok_or("no address")?;
            break address
                .split([' ', ','])
                .next()
                .ok_or("no address")?
                .parse()?;
        }
    };
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    for (name, rows, rate) in loads {
        results.push(load("cordon", name, address, token, rows, rate, &table));
    }
    // SAFETY: signals our own child.
    unsafe { libc::kill(cordon.id() as i32, libc::SIGTERM) };
    cordon.wait()?;

    match std::env::var_os("CORDON_BENCH_PYTHON") {
        None => eprintln!(
            "CORDON_BENCH_PYTHON is not set: the FastAPI baseline is not measured (scripts/bench.sh sets it)"
        ),
        Some(python) => {
            let port = free_port();
            let address: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            let mut baseline = Command::new(python)
                .current_dir(root().join("runtime/benches/python"))
                .arg("serve_baseline.py")
                .arg(root().join("examples/churn/graphs/churn_gbt.onnx"))
                .arg(port.to_string())
                .spawn()?;
            wait_for(address, &mut baseline)?;
            for (name, rows, rate) in loads {
                results.push(load("fastapi", name, address, token, rows, rate, &table));
            }
            baseline.kill()?;
            baseline.wait()?;
        }
    }
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("serve_load.json"),
        serde_json::to_string_pretty(&json!({
            "seconds_per_load": seconds(),
            "clients": CLIENTS,
            "results": results,
        }))?,
    )?;
    Ok(())
}
