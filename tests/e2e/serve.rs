//! `cordon serve`: the real binary on loopback, called over raw HTTP/1.1 as any client would.
//! Each test starts its own server on a free port and stops it with SIGTERM; every loop of
//! requests is bounded in count.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Case, onnxruntime_library};

const MANIFEST: &str = r#"
manifest-version = 1
[package]
name = "probe"
version = "0.0.0"
publisher = "tests"
license = "MIT"
description = "a test guest"
component = "model.wasm"
[input.rows]
mode = "row"
columns = [{ name = "x", type = "float64" }, { name = "label", type = "text" }]
[output.results]
columns = [{ name = "OUTPUT", type = "text" }]
"#;

const FULL_TOKEN: &str = "token-of-the-full-role";
const MASKED_TOKEN: &str = "token-of-the-masked-role";

/// A policy binding `rows` to requests, with two roles (one masks `label`), `limits` and
/// `serve` inserted into their tables.
fn policy(limits: &str, serve: &str) -> String {
    format!(
        r#"version = 1
[limits]
{limits}
[bind.rows]
source = "request"
key = ["id"]
columns = {{ x = "x", label = "label" }}
filter = "x >= 0"
[role.full]
[role.masked.bind.rows]
mask = {{ label = "'hidden'" }}
[serve]
tokens = "tokens.toml"
{serve}
[audit]
log = "out/audit.jsonl"
usage = "out/usage.jsonl"
"#
    )
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A case serving `wasm` (whose one output column is `output`) under [`policy`].
fn case(wasm: &str, output: &str, limits: &str, serve: &str) -> Case {
    let case = Case::new();
    case.package(wasm, &MANIFEST.replace("OUTPUT", output), &[]);
    case.write("policy.toml", &policy(limits, serve));
    case.write(
        "tokens.toml",
        &format!(
            "[[token]]\nname = \"full-caller\"\nrole = \"full\"\nsha256 = \"{}\"\n[[token]]\nname = \"masked-caller\"\nrole = \"masked\"\nsha256 = \"{}\"\n",
            sha256(FULL_TOKEN),
            sha256(MASKED_TOKEN)
        ),
    );
    case
}

/// A running `cordon serve`, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
    /// `http` or `https`, as the server says it serves.
    scheme: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Server {
    fn start(case: &Case) -> Server {
        let mut child = case
            .bare_command()
            .args(["serve", "--package", "package", "--policy", "policy.toml"])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--allow-unsigned",
                "--onnxruntime",
            ])
            .arg(onnxruntime_library())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let (address, scheme) = loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap() == 0 {
                panic!("cordon serve ended before serving: {seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.strip_prefix("serving ") {
                let (before, after) = rest.split_once("://").unwrap();
                let scheme = before.rsplit(' ').next().unwrap().to_string();
                let address = after.split([' ', ',']).next().unwrap();
                break (address.parse().unwrap(), scheme);
            }
        };
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = lines.read_to_string(&mut rest);
            seen + &rest
        });
        Server {
            child,
            address,
            scheme,
            stderr,
        }
    }

    /// SIGTERM, then the exit status and everything it wrote on stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        terminate(&self.child);
        let status = self.child.wait().unwrap();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        (status, stderr.join().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn terminate(child: &Child) {
    // SAFETY: signals the test's own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// An HTTP answer: status, headers (names in lower case), body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 request on a connection of its own: the status, the headers (names in lower
/// case) and the body.
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    exchange(stream, method, path, headers, body)
}

/// One HTTP/1.1 request and its answer over `stream` (plain or TLS).
fn exchange(
    mut stream: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify, after its answer.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
        }
        Err(error) => return Err(error),
    }
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_string()))
        .collect();
    Ok((status, headers, body))
}

fn infer(address: SocketAddr, token: Option<&str>, body: &Value) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    let (status, _, body) = http(
        address,
        "POST",
        "/v2/models/probe/infer",
        &headers,
        body.to_string().as_bytes(),
    )
    .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn rows_request(ids: &[&str], xs: &[f64], labels: &[&str]) -> Value {
    json!({
        "id": "req-1",
        "inputs": [
            { "name": "id", "datatype": "BYTES", "shape": [ids.len()], "data": ids },
            { "name": "x", "datatype": "FP64", "shape": [xs.len()], "data": xs },
            { "name": "label", "datatype": "BYTES", "shape": [labels.len(), 1], "data": labels },
        ]
    })
}

/// `count` requests sent at once by the full role, the `i`th made by `request(i)`; their
/// answers in that order.
fn concurrently(
    address: SocketAddr,
    count: usize,
    request: impl Fn(usize) -> Value + Sync,
) -> Vec<(u16, Value)> {
    let request = &request;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|i| scope.spawn(move || infer(address, Some(FULL_TOKEN), &request(i))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

fn error_of(response: &Value) -> String {
    response["error"].as_str().unwrap_or_default().to_string()
}

/// Two callers, two roles: the same rows reach the model masked for one and not the other;
/// the row the filter keeps out gets null outputs and `cordon_scored = false`; the key comes
/// back and never enters the sandbox.
#[test]
fn each_role_gets_its_own_masks_and_the_filter_decides_which_rows_are_scored() {
    let case = case(cordon_test_guests::POLICY_ECHO_COLUMNS, "seen", "", "");
    let server = Server::start(&case);
    let request = rows_request(&["a", "b", "c"], &[1.5, -1.0, 2.0], &["p", "q", "r"]);
    let (status, full) = infer(server.address, Some(FULL_TOKEN), &request);
    assert_eq!(status, 200, "{full}");
    let (status, masked) = infer(server.address, Some(MASKED_TOKEN), &request);
    assert_eq!(status, 200, "{masked}");
    assert_eq!(full["id"], "req-1");
    assert_eq!(output(&full, "id")["data"], json!(["a", "b", "c"]));
    assert_eq!(
        output(&full, "cordon_scored")["data"],
        json!([true, false, true])
    );
    let seen = |response: &Value| output(response, "seen")["data"].clone();
    let full_seen = seen(&full);
    let masked_seen = seen(&masked);
    assert!(
        full_seen[0].as_str().unwrap().contains("label=p"),
        "{full_seen}"
    );
    assert!(
        full_seen[2].as_str().unwrap().contains("label=r"),
        "{full_seen}"
    );
    assert!(
        masked_seen[0].as_str().unwrap().contains("label=hidden"),
        "{masked_seen}"
    );
    assert!(
        !masked_seen.to_string().contains("label=p"),
        "{masked_seen}"
    );
    // The refused row, and the key, never reached the model.
    assert_eq!(full_seen[1], Value::Null);
    for row in [&full_seen[0], &full_seen[2]] {
        let text = row.as_str().unwrap();
        assert!(!text.contains("id="), "the key entered the sandbox: {text}");
        assert!(
            !text.contains("-1"),
            "a filtered value entered the sandbox: {text}"
        );
    }
    // The metadata lists what a request carries.
    let (status, _, body) = http(
        server.address,
        "GET",
        "/v2/models/probe",
        &[("authorization", &format!("Bearer {FULL_TOKEN}"))],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_slice(&body).unwrap();
    let inputs: Vec<&str> = metadata["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["id", "label", "x"]);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    // The trail verifies and has each batch with its role.
    let verify = case.cordon(&["audit", "verify", "out/audit.jsonl"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    let roles: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "serve-batch")
        .map(|e| e["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.len(), 2, "{events:?}");
    assert!(roles.contains(&"full") && roles.contains(&"masked"));
    assert!(events.iter().any(|e| e["event"] == "run-end"));
    // The ledger counts what entered the sandbox: two rows per request.
    let usage = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    let record: Value = serde_json::from_str(usage.lines().last().unwrap()).unwrap();
    assert_eq!(record["rows_read"], 4, "{usage}");
}

/// Triton's binary tensor extension, as tritonclient sends it by default: the JSON header,
/// then each tensor's bytes; outputs asked in binary come back the same way.
#[test]
fn binary_tensors_in_and_out() {
    let case = case(cordon_test_guests::POLICY_ECHO_COLUMNS, "seen", "", "");
    let server = Server::start(&case);
    let mut ids = Vec::new();
    for id in ["k1", "k2"] {
        ids.extend_from_slice(&(id.len() as u32).to_le_bytes());
        ids.extend_from_slice(id.as_bytes());
    }
    let xs: Vec<u8> = [3.25f64, 4.5]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut labels = Vec::new();
    for label in ["é", ""] {
        labels.extend_from_slice(&(label.len() as u32).to_le_bytes());
        labels.extend_from_slice(label.as_bytes());
    }
    let header = json!({
        "inputs": [
            { "name": "id", "datatype": "BYTES", "shape": [2], "parameters": { "binary_data_size": ids.len() } },
            { "name": "x", "datatype": "FP64", "shape": [2], "parameters": { "binary_data_size": xs.len() } },
            { "name": "label", "datatype": "BYTES", "shape": [2], "parameters": { "binary_data_size": labels.len() } },
        ],
        "parameters": { "binary_data_output": true },
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&ids);
    body.extend_from_slice(&xs);
    body.extend_from_slice(&labels);
    let length = header.len().to_string();
    let bearer = format!("Bearer {FULL_TOKEN}");
    let (status, headers, response) = http(
        server.address,
        "POST",
        "/v2/models/probe/infer",
        &[
            ("authorization", &bearer),
            ("inference-header-content-length", &length),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    let json_length: usize = headers
        .iter()
        .find(|(name, _)| name == "inference-header-content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let head: Value = serde_json::from_slice(&response[..json_length]).unwrap();
    let mut binary = &response[json_length..];
    let mut outputs = std::collections::BTreeMap::new();
    for output in head["outputs"].as_array().unwrap() {
        let size = output["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        outputs.insert(
            output["name"].as_str().unwrap().to_string(),
            binary[..size].to_vec(),
        );
        binary = &binary[size..];
    }
    assert!(binary.is_empty());
    let seen = String::from_utf8_lossy(&outputs["seen"]).to_string();
    assert!(
        seen.contains("x=3.25") && seen.contains("label=é"),
        "{seen}"
    );
    // An empty text is a null, as a blank CSV cell is.
    assert!(seen.contains("label=<null>"), "{seen}");
    assert_eq!(outputs["cordon_scored"], vec![1, 1]);
    server.stop();
}

/// Bad requests get a status and a message that names what is wrong; none reaches the model.
#[test]
fn bad_requests_are_refused_by_name() {
    let case = case(
        cordon_test_guests::POLICY_ECHO_COLUMNS,
        "seen",
        "",
        "request-bytes = \"4 KiB\"\nrequest-rows = 100\nqueue-rows = 1000",
    );
    let server = Server::start(&case);
    let good = rows_request(&["a"], &[1.0], &["p"]);
    let address = server.address;

    let (status, response) = infer(address, None, &good);
    assert_eq!(status, 401, "{response}");
    assert!(error_of(&response).contains("bearer token"), "{response}");
    let (status, _) = infer(address, Some("not-a-token"), &good);
    assert_eq!(status, 401);

    let mut ungranted = good.clone();
    ungranted["inputs"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "Churn", "datatype": "BYTES", "shape": [1], "data": ["Yes"] }));
    let (status, response) = infer(address, Some(FULL_TOKEN), &ungranted);
    assert_eq!(status, 400);
    assert!(
        error_of(&response).contains("`Churn` is not granted"),
        "{response}"
    );

    let mut missing = good.clone();
    missing["inputs"].as_array_mut().unwrap().remove(2);
    let (status, response) = infer(address, Some(FULL_TOKEN), &missing);
    assert_eq!(status, 400);
    assert!(
        error_of(&response).contains("`label` is missing"),
        "{response}"
    );

    let mut wrong_type = good.clone();
    wrong_type["inputs"][1] =
        json!({ "name": "x", "datatype": "BYTES", "shape": [1], "data": ["1"] });
    let (status, response) = infer(address, Some(FULL_TOKEN), &wrong_type);
    assert_eq!(status, 400);
    assert!(
        error_of(&response).contains("input `x` has datatype BYTES"),
        "{response}"
    );

    let mut wrong_shape = good.clone();
    wrong_shape["inputs"][1]["shape"] = json!([1, 2]);
    let (status, response) = infer(address, Some(FULL_TOKEN), &wrong_shape);
    assert_eq!(status, 400);
    assert!(error_of(&response).contains("shape [1, 2]"), "{response}");

    let mut wrong_count = good.clone();
    wrong_count["inputs"][1]["shape"] = json!([2]);
    let (status, response) = infer(address, Some(FULL_TOKEN), &wrong_count);
    assert_eq!(status, 400);
    assert!(
        error_of(&response).contains("has 1 elements, but its shape says 2"),
        "{response}"
    );

    let too_many: Vec<f64> = (0..101).map(f64::from).collect();
    let ids: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (status, response) = infer(
        address,
        Some(FULL_TOKEN),
        &rows_request(&id_refs, &too_many, &vec!["p"; 101]),
    );
    assert!(status == 400 || status == 413, "{status} {response}");

    let bearer = format!("Bearer {FULL_TOKEN}");
    let (status, _, body) = http(
        address,
        "POST",
        "/v2/models/probe/infer",
        &[("authorization", &bearer)],
        b"{\"inputs\": [",
    )
    .unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not valid JSON"));

    let (status, _, _) = http(
        address,
        "POST",
        "/v2/models/probe/infer",
        &[("authorization", &bearer)],
        &vec![b' '; 10_000],
    )
    .unwrap();
    assert_eq!(status, 413);

    // Names cut for an error message at a byte inside a character (no panic, a 4xx).
    let long_path = format!("/{}é", "a".repeat(126));
    let (status, _, _) = http(address, "GET", &long_path, &[], b"").unwrap();
    assert_eq!(status, 404);
    let mut long_name = good.clone();
    long_name["inputs"][1]["name"] = json!(format!("{}é", "a".repeat(127)));
    let (status, response) = infer(address, Some(FULL_TOKEN), &long_name);
    assert_eq!(status, 400, "{response}");
    let mut long_value = good.clone();
    long_value["inputs"][1]["data"] = json!(["é".repeat(40)]);
    let (status, response) = infer(address, Some(FULL_TOKEN), &long_value);
    assert_eq!(status, 400, "{response}");

    // An output asked for twice would be encoded twice: refused.
    let mut twice = good.clone();
    twice["outputs"] = json!([{ "name": "seen" }, { "name": "seen" }]);
    let (status, response) = infer(address, Some(FULL_TOKEN), &twice);
    assert_eq!(status, 400, "{response}");
    assert!(
        error_of(&response).contains("`seen` is asked for twice"),
        "{response}"
    );

    let (status, _, _) = http(
        address,
        "POST",
        "/v2/models/other/infer",
        &[("authorization", &bearer)],
        good.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 404);
    // After all that, the server still scores.
    let (status, response) = infer(address, Some(FULL_TOKEN), &good);
    assert_eq!(status, 200, "{response}");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
}

/// A fuzz loop of bounded size: requests cut, corrupted and made up at random (a fixed seed).
/// The server answers every one with a client error or a result, never a 5xx, and keeps
/// serving.
#[test]
fn a_fuzz_loop_of_bad_requests_never_breaks_the_server() {
    let case = case(cordon_test_guests::POLICY_ECHO_COLUMNS, "seen", "", "");
    let server = Server::start(&case);
    let good = rows_request(&["a", "b"], &[1.0, 2.0], &["p", "q"]).to_string();
    let bearer = format!("Bearer {FULL_TOKEN}");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..300 {
        let mut body = good.clone().into_bytes();
        match next() % 5 {
            0 => body.truncate((next() as usize) % body.len()),
            1 => {
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % body.len();
                    body[at] = next() as u8;
                }
            }
            2 => {
                let at = (next() as usize) % body.len();
                let junk: Vec<u8> = (0..next() % 32).map(|_| next() as u8).collect();
                body.splice(at..at, junk);
            }
            3 => body = (0..next() % 256).map(|_| next() as u8).collect(),
            _ => {
                let text = String::from_utf8_lossy(&body).to_string();
                let replaced = text
                    .replacen("FP64", ["INT32", "BOOL", "FP16", ""][round % 4], 1)
                    .replacen(
                        "[2]",
                        ["[-1]", "[99999999999]", "[2,2,2]", "[]"][round % 4],
                        1,
                    );
                body = replaced.into_bytes();
            }
        }
        let header_length = (next() % 4 == 0).then(|| ((next() as usize) % 400).to_string());
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(length) = &header_length {
            headers.push(("inference-header-content-length", length));
        }
        let (status, _, response) = http(
            server.address,
            "POST",
            "/v2/models/probe/infer",
            &headers,
            &body,
        )
        .unwrap();
        assert!(
            status == 200 || (400..500).contains(&status),
            "round {round}: {status} {}",
            String::from_utf8_lossy(&response)
        );
    }
    let (status, _, _) = http(server.address, "GET", "/v2/health/ready", &[], b"").unwrap();
    assert_eq!(status, 200);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Requests batched together, one of them making the guest trap: that one fails (500, with the
/// model's error), the others are answered, the instance is replaced and the server goes on.
#[test]
fn a_trapping_request_fails_alone() {
    let case = case(
        cordon_test_guests::TRAP_PANIC,
        "outcome",
        "instances = 1\nbatch-rows = 64",
        "max-batch-delay = \"300ms\"",
    );
    let server = Server::start(&case);
    let address = server.address;
    let answers = concurrently(address, 8, |i| {
        let x = if i == 3 { 13.0 } else { i as f64 };
        rows_request(&[&format!("r{i}")], &[x], &["p"])
    });
    for (i, (status, response)) in answers.iter().enumerate() {
        if i == 3 {
            assert_eq!(*status, 500, "{response}");
            assert!(error_of(response).contains("unlucky row"), "{response}");
        } else {
            assert_eq!(*status, 200, "request {i}: {response}");
            assert_eq!(output(response, "outcome")["data"], json!(["ok"]));
        }
    }
    // The server goes on with a new instance.
    let (status, response) = infer(
        address,
        Some(FULL_TOKEN),
        &rows_request(&["z"], &[1.0], &["p"]),
    );
    assert_eq!(status, 200, "{response}");
    let (_, _, metrics) = http(address, "GET", "/metrics", &[], b"").unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("cordon_instances_replaced_total{model=\"probe\"} "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("cordon_instances_replaced_total{model=\"probe\"} 0"),
        "{metrics}"
    );
    server.stop();
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    assert!(
        events.iter().any(|e| e["event"] == "serve-batch"
            && e["status"] == "retried"
            && e["requests"].as_u64() > Some(1)),
        "the failing request was not batched with others: {events:?}"
    );
}

/// A request whose value the policy's query cannot take (a cast it refuses) is batched with
/// good ones: it fails alone with a 400, the others are scored, and the usage ledger counts
/// the rows that entered the sandbox, however the batch was first cut.
#[test]
fn a_refused_value_fails_alone_and_the_ledger_counts_the_others() {
    let case = case(
        cordon_test_guests::POLICY_ECHO_COLUMNS,
        "seen",
        "instances = 1\nbatch-rows = 64",
        "max-batch-delay = \"300ms\"",
    );
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    case.write(
        "policy.toml",
        &policy.replace(
            "filter = \"x >= 0\"",
            "filter = \"CAST(label AS DOUBLE) >= 0\"",
        ),
    );
    let server = Server::start(&case);
    let address = server.address;
    let answers = concurrently(address, 8, |i| {
        let label = if i == 5 { "not a number" } else { "1" };
        rows_request(&[&format!("r{i}")], &[1.0], &[label])
    });
    for (i, (status, response)) in answers.iter().enumerate() {
        if i == 5 {
            assert_eq!(*status, 400, "{response}");
        } else {
            assert_eq!(*status, 200, "request {i}: {response}");
        }
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    assert!(
        events.iter().any(|e| e["event"] == "serve-batch"
            && e["status"] == "retried"
            && e["requests"].as_u64() > Some(1)),
        "the refused request was not batched with others: {events:?}"
    );
    let usage = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    let rows: u64 = usage
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["rows_read"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(rows, 7, "{usage}");
}

/// SIGTERM under load: every request the server answered was scored and recorded, none is cut
/// off with an error, and the trail verifies with the run's end.
#[test]
fn sigterm_under_load_loses_no_accepted_request() {
    let case = case(
        cordon_test_guests::POLICY_ECHO_COLUMNS,
        "seen",
        "instances = 2\nbatch-rows = 256",
        "",
    );
    let server = Server::start(&case);
    let address = server.address;
    let stop_at = Instant::now() + Duration::from_millis(800);
    let clients: Vec<_> = (0..8)
        .map(|client| {
            std::thread::spawn(move || {
                let mut answered_rows = 0u64;
                let mut statuses = Vec::new();
                for round in 0..2_000 {
                    let rows = 1 + (client + round) % 4;
                    let ids: Vec<String> = (0..rows)
                        .map(|r| format!("c{client}r{round}n{r}"))
                        .collect();
                    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let xs: Vec<f64> = (0..rows).map(|r| r as f64).collect();
                    let request = rows_request(&id_refs, &xs, &vec!["p"; rows]);
                    let bearer = format!("Bearer {FULL_TOKEN}");
                    match http(
                        address,
                        "POST",
                        "/v2/models/probe/infer",
                        &[("authorization", &bearer)],
                        request.to_string().as_bytes(),
                    ) {
                        Ok((status, _, _)) => {
                            statuses.push(status);
                            if status == 200 {
                                answered_rows += rows as u64;
                            }
                        }
                        // Refused or reset: the server no longer takes connections.
                        Err(_) => break,
                    }
                }
                (answered_rows, statuses)
            })
        })
        .collect();
    std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let mut answered_rows = 0;
    for client in clients {
        let (rows, statuses) = client.join().unwrap();
        answered_rows += rows;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert!(answered_rows > 0);
    let verify = case.cordon(&["audit", "verify", "out/audit.jsonl"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    let recorded: u64 = events
        .iter()
        .filter(|e| e["event"] == "serve-batch" && e["status"] == "ok")
        .map(|e| e["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(
        recorded, answered_rows,
        "rows answered and rows recorded differ"
    );
    assert_eq!(events.last().unwrap()["event"], "run-end");
}

/// A policy that cannot be served is refused at start, by name.
#[test]
fn serve_refuses_what_it_cannot_serve() {
    let case = case(cordon_test_guests::POLICY_ECHO_COLUMNS, "seen", "", "");
    let serve = |case: &Case| {
        case.bare_command()
            .args(["serve", "--package", "package", "--policy", "policy.toml"])
            .args(["--listen", "127.0.0.1:0", "--allow-unsigned"])
            .output()
            .unwrap()
    };
    case.write(
        "tokens.toml",
        &format!("[[token]]\nname = \"x\"\nsha256 = \"{}\"\n", sha256("t")),
    );
    let output = serve(&case);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tokens.toml") && stderr.contains("names no role"),
        "{stderr}"
    );
    // A table-bound policy is for cordon run; the request-bound one is not for cordon run.
    let table_bound = policy("", "").replace("source = \"request\"", "source = \"t.csv\"")
        + "[emit.results]\nsink = \"out/r.csv\"\n";
    case.write("policy.toml", &table_bound);
    case.write(
        "tokens.toml",
        &format!(
            "[[token]]\nname = \"x\"\nrole = \"full\"\nsha256 = \"{}\"\n",
            sha256("t")
        ),
    );
    let output = serve(&case);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("source = \\\"request\\\"") || stderr.contains("source = \"request\""),
        "{stderr}"
    );
    case.write("policy.toml", &policy("", ""));
    let output = case.run_cli(&["--role", "full"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("serve it with `cordon serve`"), "{stderr}");
}

const TLS_CA: &str = include_str!("../fixtures/tls/ca.pem");

/// A TLS client that trusts the test CA (tests/fixtures/tls), connected to `address`.
fn tls_connect(
    address: SocketAddr,
) -> tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, TcpStream> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(TLS_CA.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // As curl does: HTTP/2 first. The REST port must answer HTTP/1.1 all the same.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::IpAddress(address.ip().into());
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

/// With a certificate in the policy the server speaks TLS only: a plain-HTTP request gets no
/// answer (and does not stop the server), a client that trusts the CA is told HTTP/1.1 by
/// ALPN and gets its inference, and one that trusts nothing cannot connect.
#[test]
fn with_a_certificate_the_server_speaks_tls_only() {
    let case = case(
        cordon_test_guests::POLICY_ECHO_COLUMNS,
        "seen",
        "",
        "tls-certificate = \"server.pem\"\ntls-key = \"server.key\"",
    );
    case.write("server.pem", include_str!("../fixtures/tls/server.pem"));
    case.write("server.key", include_str!("../fixtures/tls/server.key"));
    let server = Server::start(&case);
    assert!(
        server.scheme == "https",
        "the server says it serves {}",
        server.scheme
    );

    let plain = http(server.address, "GET", "/v2/health/live", &[], b"");
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|(status, _, _)| *status != 200),
        "plain HTTP was answered: {plain:?}"
    );

    let mut stream = tls_connect(server.address);
    let request = rows_request(&["a"], &[1.5], &["p"]);
    let bearer = format!("Bearer {FULL_TOKEN}");
    let (status, _, body) = exchange(
        &mut stream,
        "POST",
        "/v2/models/probe/infer",
        &[
            ("content-type", "application/json"),
            ("authorization", &bearer),
        ],
        request.to_string().as_bytes(),
    )
    .unwrap();
    let response: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        stream.conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the REST port offered another protocol"
    );
    assert!(
        output(&response, "seen")["data"][0]
            .as_str()
            .unwrap()
            .contains("label=p"),
        "{response}"
    );

    // A client that does not trust the certificate's issuer is refused by its own TLS.
    let untrusting = {
        use tokio_rustls::rustls;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::IpAddress(server.address.ip().into());
        let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        rustls::StreamOwned::new(connection, TcpStream::connect(server.address).unwrap())
    };
    assert!(exchange(untrusting, "GET", "/v2/health/live", &[], b"").is_err());

    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
}

/// A value outside the manifest's levels fails its request with 400, naming the request's row,
/// the column and the value, before the sandbox sees any of it; the next request is scored.
#[test]
fn a_level_outside_the_manifest_fails_its_request_by_row() {
    let case = case(cordon_test_guests::POLICY_ECHO_COLUMNS, "seen", "", "");
    let manifest = MANIFEST.replace("OUTPUT", "seen").replace(
        "{ name = \"label\", type = \"text\" }",
        "{ name = \"label\", type = \"text\", levels = [\"a\", \"b\"] }",
    );
    case.package(cordon_test_guests::POLICY_ECHO_COLUMNS, &manifest, &[]);
    let server = Server::start(&case);
    let (status, response) = infer(
        server.address,
        Some(FULL_TOKEN),
        &rows_request(&["r0", "r1", "r2"], &[1.0, 2.0, 3.0], &["a", "b", "zzz"]),
    );
    assert_eq!(status, 400, "{response}");
    let error = error_of(&response);
    assert!(error.contains("row 3 of the request"), "{error}");
    assert!(error.contains("column `label`: `zzz`"), "{error}");
    assert!(
        error.contains("[\"a\", \"b\"]") || error.contains("a, b"),
        "{error}"
    );
    let (status, response) = infer(
        server.address,
        Some(FULL_TOKEN),
        &rows_request(&["r0", "r1"], &[1.0, 2.0], &["a", "b"]),
    );
    assert_eq!(status, 200, "{response}");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    // Under `out-of-domain = "count"` the same request is scored, and /metrics counts it.
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    case.write(
        "policy.toml",
        &policy.replace("[bind.rows]\n", "[bind.rows]\nout-of-domain = \"count\"\n"),
    );
    let server = Server::start(&case);
    let (status, response) = infer(
        server.address,
        Some(FULL_TOKEN),
        &rows_request(&["r0", "r1", "r2"], &[1.0, 2.0, 3.0], &["a", "b", "zzz"]),
    );
    assert_eq!(status, 200, "{response}");
    let (_, _, metrics) = http(server.address, "GET", "/metrics", &[], b"").unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("cordon_values_out_of_domain_total{model=\"probe\"} 1"),
        "{metrics}"
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
}
