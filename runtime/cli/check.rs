//! `cordon check`: the grant and every SQL snippet of the policy planned, nothing run.

use cordon::{Runtime, RuntimeConfig};

use crate::args::ModelArgs;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print the grant as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    // Nothing runs, so neither ONNX Runtime nor a compile cache is needed.
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let grant = runtime.check(&args.model.request()?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&grant)?);
        return Ok(());
    }
    let input = &grant.input;
    println!(
        "{} grants {} input `{}` from {}{}",
        args.model.policy.display(),
        args.model.package.display(),
        input.name,
        input.source.display(),
        grant
            .role
            .as_ref()
            .map(|role| format!(" as role `{role}`"))
            .unwrap_or_default()
    );
    for column in &input.columns {
        let masked = [&column.mask, &column.role_mask]
            .into_iter()
            .flatten()
            .map(|mask| format!(", masked as {mask}"))
            .collect::<String>();
        println!(
            "  {:<20} {:<9} <- {}{masked}",
            column.model.as_str(),
            column.ty.to_string(),
            column.source
        );
    }
    if let Some(filter) = &input.filter {
        println!("  rows where {filter}");
    }
    if !input.key.is_empty() {
        println!("  held back   {}", input.key.join(", "));
    }
    if !input.partition_by.is_empty() {
        let names = |names: &[cordon::names::Name]| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  partitions  by {}, ordered by {}",
            names(&input.partition_by),
            names(&input.order_by)
        );
    }
    println!(
        "  output      `{}` -> {}",
        grant.output.name,
        grant.output.sink.display()
    );
    for graph in &grant.graphs {
        println!(
            "  graph       {} on {}, {}",
            graph.spec.name,
            graph.device,
            match grant.isolation {
                cordon::policy::Isolation::Jail => "in a jailed inference worker",
                cordon::policy::Isolation::InProcess => "in this process (isolation = in-process)",
            }
        );
    }
    for setting in &grant.settings {
        let origin = match setting.origin {
            cordon::settings::SettingOrigin::Default => "the manifest's default",
            cordon::settings::SettingOrigin::Policy => "set by the policy",
        };
        println!(
            "  setting     {} = {} ({origin})",
            setting.name, setting.value
        );
    }
    if !input.domains.is_empty() {
        println!(
            "  domains     {} column(s) checked before the sandbox; values outside: {}",
            input.domains.len(),
            match input.out_of_domain {
                cordon::policy::OutOfDomain::Refuse => "refused (out-of-domain = \"refuse\")",
                cordon::policy::OutOfDomain::Count =>
                    "scored and counted (out-of-domain = \"count\")",
            }
        );
    }
    // The provider's resource hints against the policy's limits: a warning, not a refusal
    // (hints are the provider's guess; the limits are what the host enforces).
    let package = cordon::package::Package::load(&args.model.package)?;
    let policy = cordon::policy::Policy::load(&args.model.policy, &crate::args::current_dir()?)?;
    let manifest = &package.manifest;
    for shortfall in manifest
        .resources
        .shortfalls(&policy.limits, manifest.input.mode)
    {
        eprintln!("warning: {shortfall}");
    }
    println!("ok: nothing was run and no row was read");
    Ok(())
}
