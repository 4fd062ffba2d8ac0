//! `cordon __inference-worker`: the process a jailed instance runs its graphs in (hidden; the
//! host starts it, see `cordon::nn::jail::worker`).

use std::path::PathBuf;

/// What the host passes an inference worker (see `cordon::nn::jail::worker`).
#[derive(clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub socket: i32,
    #[arg(long)]
    pub region: i32,
    #[arg(long)]
    pub region_bytes: u64,
    #[arg(long)]
    pub onnxruntime: PathBuf,
    #[arg(long)]
    pub parent: u32,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    cordon::nn::jail::worker::run(cordon::nn::jail::worker::WorkerArgs {
        socket_fd: args.socket,
        region_fd: args.region,
        region_bytes: args.region_bytes,
        onnxruntime: args.onnxruntime,
        parent: args.parent,
    })
    .map_err(|why| anyhow::anyhow!("inference worker: {why}"))
}
