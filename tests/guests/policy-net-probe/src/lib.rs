//! Tries to open sockets. Reports what happened as the `outcome` of every row: `denied: ...` or
//! `allowed: ...`.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Probe;

fn probe() -> String {
    use std::net::{SocketAddr, TcpStream, UdpSocket};
    let mut found = Vec::new();
    let timeout = std::time::Duration::from_millis(200);
    for address in ["127.0.0.1:22", "127.0.0.1:80", "10.0.0.1:443", "[::1]:80"] {
        let Ok(address) = address.parse::<SocketAddr>() else {
            continue;
        };
        if TcpStream::connect_timeout(&address, timeout).is_ok() {
            found.push(format!("connected to {address}"));
        }
    }
    if let Ok(socket) = UdpSocket::bind("0.0.0.0:0")
        && socket.send_to(b"leak", "127.0.0.1:9999").is_ok()
    {
        found.push("sent a UDP datagram".into());
    }
    if let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") {
        found.push(format!("listened on {:?}", listener.local_addr()));
    }
    if found.is_empty() {
        "denied: no socket could connect, send or listen".into()
    } else {
        format!("allowed: {}", found.join(", "))
    }
}

impl Model for Probe {
    fn describe() -> ModelInfo {
        ModelInfo::new("policy-net-probe", "0.0.0", "Tries to open sockets")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let outcome = probe();
        BatchBuilder::new()
            .text("outcome", vec![outcome; input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(Probe);
