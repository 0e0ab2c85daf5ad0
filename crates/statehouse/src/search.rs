//! `statehouse search`: resource instances across every state you may read, through the API.

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, str_or};

#[derive(Args)]
pub struct SearchArgs {
    /// Any identifying attribute (`id`, `arn`, `name` or `self_link`), e.g. i-0abc123.
    q: Option<String>,
    /// Resource type, e.g. aws_instance.
    #[arg(long = "type", value_name = "TYPE")]
    resource_type: Option<String>,
    /// Resource name in configuration, e.g. web.
    #[arg(long)]
    name: Option<String>,
    /// Module path as Terraform prints it, e.g. 'module.app["web"]' (with --match exact and an
    /// empty value: the root module).
    #[arg(long)]
    module: Option<String>,
    /// Provider as written in state, e.g. 'provider["registry.terraform.io/hashicorp/aws"]'.
    #[arg(long)]
    provider: Option<String>,
    /// managed or data.
    #[arg(long)]
    mode: Option<String>,
    /// The `id` attribute.
    #[arg(long)]
    id: Option<String>,
    /// The `arn` attribute.
    #[arg(long)]
    arn: Option<String>,
    /// The `name` attribute.
    #[arg(long)]
    name_attribute: Option<String>,
    /// The `self_link` attribute.
    #[arg(long)]
    self_link: Option<String>,
    /// How every given field matches.
    #[arg(long = "match", value_enum, default_value = "exact")]
    match_mode: MatchArg,
    #[command(flatten)]
    paging: Paging,
    #[command(flatten)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum MatchArg {
    Exact,
    Prefix,
}

pub async fn run(client: &Client, args: SearchArgs) -> Result<()> {
    let query = Query::new()
        .with("q", args.q)
        .with("type", args.resource_type)
        .with("name", args.name)
        .with("module", args.module)
        .with("provider", args.provider)
        .with("mode", args.mode)
        .with("id", args.id)
        .with("arn", args.arn)
        .with("name_attribute", args.name_attribute)
        .with("self_link", args.self_link);
    if query.is_empty() {
        bail!(
            "nothing to search for: give an identifier (statehouse search i-0abc123) or fields such as --type aws_instance"
        );
    }
    let query = query.with(
        "match",
        Some(match args.match_mode {
            MatchArg::Exact => "exact",
            MatchArg::Prefix => "prefix",
        }),
    );
    let page = client
        .list(&path(["search", "resources"]), query, &args.paging)
        .await?;
    let not_indexed = page["not_indexed"].clone();
    args.output.page(
        page,
        "results",
        &[
            "WORKSPACE",
            "STATE",
            "ADDRESS",
            "IDENTIFIER",
            "VERSION",
            "APPEARED",
        ],
        |hit: &Value| {
            let attributes = &hit["attributes"];
            vec![
                str_or(&hit["workspace"], ""),
                str_or(&hit["state"], ""),
                str_or(&hit["address"], ""),
                ["id", "arn", "name", "self_link"]
                    .iter()
                    .find_map(|k| attributes[*k].as_str())
                    .unwrap_or("-")
                    .to_owned(),
                hit["version"].to_string(),
                format!(
                    "v{} {}",
                    hit["appeared_in_version"],
                    str_or(&hit["appeared_at"], "")
                ),
            ]
        },
    )?;
    if !args.output.json
        && let Some(count) = not_indexed["count"].as_i64().filter(|c| *c > 0)
    {
        let named: Vec<String> = not_indexed["states"]
            .as_array()
            .map(|states| {
                states
                    .iter()
                    .map(|s| {
                        format!(
                            "{}/{} ({})",
                            s["workspace"].as_str().unwrap_or_default(),
                            s["state"].as_str().unwrap_or_default(),
                            s["reason"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        errln!(
            "{count} readable states are not indexed, so results may miss them: {}",
            named.join(", ")
        );
    }
    Ok(())
}
