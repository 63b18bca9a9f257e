use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use iotcane_model::Tenant;
use iotcane_store::KnowledgeStore;
use oxigraph::io::{JsonLdProfileSet, RdfFormat};

use crate::cli::{ExportArgs, ExportFormat};
use crate::settings::Settings;

/// Writes the graph, rebuilt from snapshot and journal, in the chosen format.
pub async fn run(settings: &Settings, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let tenant: Option<Tenant> = args
        .tenant
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--tenant")?;
    let format = match args.format {
        ExportFormat::Nquads => RdfFormat::NQuads,
        ExportFormat::Trig => RdfFormat::TriG,
        ExportFormat::Turtle => RdfFormat::Turtle,
        ExportFormat::Ntriples => RdfFormat::NTriples,
        ExportFormat::Jsonld => RdfFormat::JsonLd {
            profile: JsonLdProfileSet::empty(),
        },
    };
    if tenant.is_none() && !format.supports_datasets() {
        tracing::warn!(
            "exporting every tenant without graph names merges their knowledge; use --tenant or a dataset format"
        );
    }
    let store = KnowledgeStore::open(settings.store_config()).await?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let exporter = store.clone();
    let mut out = tokio::task::spawn_blocking(move || {
        exporter.export(
            tenant.as_ref(),
            format,
            BufWriter::with_capacity(1 << 20, out),
        )
    })
    .await??;
    out.flush()?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
