//! `cordon serve`: a signed package served over KServe's Open Inference Protocol v2 (REST, and
//! gRPC with `--grpc`), under the policy's request binding and `[serve]` section, until
//! SIGTERM or Ctrl-C; and `cordon token`, which makes a caller's token and its entry for the
//! token file.

use std::net::SocketAddr;
use std::path::PathBuf;

use cordon::Runtime;
use cordon::drivers::serve::{ServeRequest, Server};

use crate::args::{RuntimeArgs, current_dir};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The package: a signed .cordon file, or a build directory holding cordon.toml.
    #[arg(long)]
    package: PathBuf,
    /// The consumer's policy file: a binding with `source = "request"` and a [serve] section.
    #[arg(long)]
    policy: PathBuf,
    /// Accept a package that is not signed (local development only).
    #[arg(long)]
    allow_unsigned: bool,
    /// Where REST listens (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Where gRPC listens, if at all.
    #[arg(long, value_name = "ADDR")]
    grpc: Option<SocketAddr>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = Runtime::new(args.runtime.config()?)?;
    if args.allow_unsigned {
        eprintln!(
            "warning: --allow-unsigned: an unsigned package would run without any check of who made it; for local development only"
        );
    }
    let request = ServeRequest {
        package: args.package,
        policy: args.policy,
        base_dir: current_dir()?,
        allow_unsigned: args.allow_unsigned,
        http: args.listen,
        grpc: args.grpc,
    };
    let server = Server::start(&runtime, &request)?;
    let scheme = if server.tls() { "https" } else { "http" };
    let (http, grpc) = server.addresses();
    // Tests and scripts read this line for the port.
    eprintln!(
        "serving {} on {scheme}://{}{} (run {}); SIGTERM or Ctrl-C stops it",
        server.model_name(),
        http.map_or_else(|| "?".into(), |a| a.to_string()),
        grpc.map_or_else(String::new, |a| format!(", gRPC on {a}")),
        server.run_id
    );
    let summary = server.serve(async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    })?;
    eprintln!(
        "stopped: {} rows scored in {} calls, {} requests failed{}",
        summary.rows_scored,
        summary.batches,
        summary.requests_failed,
        summary
            .audit_head
            .map_or_else(String::new, |head| format!("; audit head {head}"))
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct TokenArgs {
    /// Who the token is for, as the audit trail names its requests.
    #[arg(long)]
    name: String,
    /// The policy role its requests run as (when the policy has roles).
    #[arg(long)]
    role: Option<String>,
}

/// Prints a new token (to give the caller once) and the entry to add to the token file.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let (token, hash) = cordon::drivers::serve::new_token()?;
    eprintln!(
        "token for {} (give it to the caller; only its hash is stored):",
        args.name
    );
    eprintln!("{token}");
    println!("[[token]]");
    println!("name = {}", toml_string(&args.name));
    if let Some(role) = &args.role {
        println!("role = {}", toml_string(role));
    }
    println!("sha256 = \"{hash}\"");
    Ok(())
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
