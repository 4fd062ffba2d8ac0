use super::*;

/// Every use of every kind of address is refused: IPv4 and IPv6, loopback, unspecified,
/// private and public, any port. wasmtime checks a UDP `stream` to a remote address (UDP's
/// connect) as `UdpSend` and `UdpReceive` of that address, and an implicit bind as a bind.
#[test]
fn every_socket_address_is_refused_for_every_use() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use wasmtime_wasi::sockets::SocketAddrUse;

    let ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];
    let uses = [
        SocketAddrUse::TcpBind,
        SocketAddrUse::TcpListen,
        SocketAddrUse::TcpAccept,
        SocketAddrUse::TcpConnect,
        SocketAddrUse::UdpBind,
        SocketAddrUse::UdpSend,
        SocketAddrUse::UdpReceive,
    ];
    let mut checked = 0;
    for ip in ips {
        for port in [0, 53, 80, 443, 8080, u16::MAX] {
            for usage in uses {
                let address = SocketAddr::new(ip, port);
                let allowed =
                    futures::executor::block_on(deny_every_socket_address(address, usage));
                assert!(!allowed, "{address} was allowed for {usage:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 11 * 6 * 7);
}

/// wasmtime's copy limit names no policy key; the host says which one bounds it.
#[test]
fn the_copy_limit_is_named() {
    let error = wasmtime::Error::msg(
        "too much data is being copied between the host and the guest: fuel allocated for hostcalls has been exhausted",
    )
    .context("error while executing at wasm backtrace");
    let TrapCause::Limit(limit) = trap_cause(&error, "") else {
        panic!("not a limit");
    };
    assert!(limit.to_string().contains("limits.memory"), "{limit}");
}

/// A model's stderr cannot forge a host line or reorder the terminal.
#[test]
fn guest_stderr_in_a_trap_is_marked_and_escaped() {
    let stderr = "panicked\nerror: run failed\u{202e}txt\u{1b}[2K";
    let error = wasmtime::Error::msg("wasm trap: unreachable");
    let TrapCause::Other(message) = trap_cause(&error, stderr) else {
        panic!("not a trap");
    };
    assert!(
        message.contains("\n    | panicked\n    | error: run failed"),
        "{message}"
    );
    assert!(
        !message.contains('\u{202e}') && !message.contains('\u{1b}'),
        "{message}"
    );
}

fn batch_with_text(offsets: Vec<u32>, bytes: &[u8]) -> wit::Batch {
    wit::Batch {
        num_rows: offsets.len().saturating_sub(1) as u32,
        columns: vec![wit::Column {
            name: "zip".into(),
            values: wit::ColumnValues::Text(wit::TextValues {
                offsets,
                bytes: bytes.to_vec(),
            }),
            validity: Vec::new(),
        }],
    }
}

#[test]
fn text_and_validity_cross_as_buffers_and_come_back() {
    let values = ["Month-to-month", "", "Ünïcode"];
    let text = data::TextValues::from_strs(values).unwrap();
    let batch = data::Batch {
        num_rows: 3,
        columns: vec![data::Column {
            name: "c".into(),
            values: data::ColumnValues::Text(text.clone()),
            validity: vec![true, false, true],
        }],
    };
    let lowered = to_wit(batch);
    assert_eq!(lowered.columns[0].validity, [1, 0, 1]);
    let back = from_wit(lowered).unwrap();
    assert_eq!(back.columns[0].values, data::ColumnValues::Text(text));
    assert_eq!(back.columns[0].validity, [true, false, true]);

    // From a model, any byte but 0 is a present value.
    let mut output = batch_with_text(vec![0, 1, 2], b"ab");
    output.columns[0].validity = vec![0, 7];
    assert_eq!(from_wit(output).unwrap().columns[0].validity, [false, true]);
}

#[test]
fn a_models_malformed_text_is_refused_by_name() {
    let cases = [
        (batch_with_text(vec![1, 2], b"ab"), "do not start at 0"),
        (
            batch_with_text(vec![0, 1], b"ab"),
            "do not end at the length",
        ),
        (batch_with_text(vec![0, 2, 1, 2], b"ab"), "decrease"),
        (batch_with_text(vec![0, 1, 2], &[0xc3, 0xa9]), "not UTF-8"),
    ];
    for (malformed, why) in cases {
        let error = from_wit(malformed).unwrap_err();
        assert!(error.contains("`zip`") && error.contains(why), "{error}");
    }
}
