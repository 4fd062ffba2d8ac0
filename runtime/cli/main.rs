//! The `cordon` command. The only place that reads arguments and environment variables, and
//! the only place that decides the exit code: 0 on success, 2 on any error, with the whole
//! cause chain on stderr. It parses and dispatches; each subcommand is a file of its own.

mod args;
mod audit;
mod check;
mod package;
mod plot;
mod project;
mod run;
mod sample;
mod serve;
mod sql;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cordon",
    version,
    about = "Run third-party models in a WebAssembly sandbox on data their authors never see"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a package on the tables its policy binds, and write the outputs the policy names.
    Run(run::RunArgs),
    /// Query the policy's tables in SQL, with each package's model as SQL functions: a table
    /// function (`SELECT * FROM telco_churn('customers')`) and, in row mode, a scalar one
    /// (`telco_churn(tenure, ...)`). The policy is checked on each statement's plan first.
    Sql(sql::SqlArgs),
    /// Serve a row-mode package over KServe's Open Inference Protocol v2 (REST, and gRPC with
    /// --grpc), for the callers in the policy's token file, until SIGTERM.
    Serve(serve::ServeArgs),
    /// Make a caller's bearer token for `cordon serve`: prints the token (on stderr, once)
    /// and the [[token]] entry with its hash to add to the token file.
    Token(serve::TokenArgs),
    /// Check a policy against a package and its tables without running anything: the grant,
    /// and every filter, mask and column expression planned against the table (no row read).
    Check(check::CheckArgs),
    /// Start a provider's project: a model crate that builds as it is, its manifest, its
    /// toolchain and a README, in a new directory.
    New(project::NewArgs),
    /// Build a provider's project: the component for wasm32-wasip2 with the guest profile,
    /// put where the manifest says, then the manifest, graphs and component checked.
    Build(project::BuildArgs),
    /// Try a package directory on a sample table under a generated local policy: outputs
    /// compared with a reference, and the measured needs in the form [resources] takes.
    Test(sample::TestArgs),
    /// Pack a provider's build directory into one NAME-VERSION.cordon file (deterministic).
    Pack {
        /// The directory holding cordon.toml, the component and the graphs.
        dir: PathBuf,
        /// Where to write the package.
        #[arg(long, short, default_value = ".")]
        out: PathBuf,
    },
    /// Make an ed25519 key pair: <STEM>.key (private, mode 0600) and <STEM>.pub.
    Keygen {
        /// Path of the key files without extension, such as keys/acme-analytics.
        stem: PathBuf,
    },
    /// Sign a .cordon package: adds a signature (model.sig) over the SHA-256 of every file.
    Sign {
        /// The private key, as `cordon keygen` writes it.
        #[arg(long)]
        key: PathBuf,
        /// The package to sign, in place.
        package: PathBuf,
    },
    /// The permissions screen: who made a package, whether its signature holds, what data it
    /// asks for, what it writes, its graphs and their operators, and what its component
    /// imports. Runs nothing.
    Inspect {
        /// The .cordon package (or a package directory).
        package: PathBuf,
        /// Verify the signature against this policy's [trust]; without it, it is only read.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print it as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check a package's signature and digests against a policy's [trust] section.
    Verify {
        /// The .cordon package.
        package: PathBuf,
        /// The consumer's policy file.
        #[arg(long)]
        policy: PathBuf,
    },
    /// Draw a forecasting model's output: one small panel per series with its history, the
    /// point forecast and the 80% and 95% intervals, as a PNG.
    Plot(plot::PlotArgs),
    /// Check or read an audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The inference worker a run starts for each sandbox instance (not for direct use).
    #[command(name = "__inference-worker", hide = true)]
    InferenceWorker(worker::WorkerArgs),
}

fn main() -> ExitCode {
    // ONNX Runtime 1.31 keeps a telemetry database and a device id under ~/.cache unless told
    // not to; Cordon's host sends nothing anywhere and writes only what the policy names.
    // SAFETY: set before any thread is started, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Sql(args) => sql::sql(args),
        Command::Serve(args) => serve::serve(args),
        Command::Token(args) => serve::token(args),
        Command::Check(args) => check::check(args),
        Command::New(args) => project::new(args),
        Command::Build(args) => project::build(args),
        Command::Test(args) => sample::test(args),
        Command::Pack { dir, out } => package::pack(&dir, &out),
        Command::Keygen { stem } => package::keygen(&stem),
        Command::Sign { key, package } => package::sign(&key, &package),
        Command::Inspect {
            package,
            policy,
            json,
        } => package::inspect(&package, policy.as_deref(), json),
        Command::Verify { package, policy } => package::verify(&package, &policy),
        Command::Plot(args) => plot::plot(args),
        Command::Audit(command) => audit::audit(command),
        Command::InferenceWorker(args) => worker::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
