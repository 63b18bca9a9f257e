use std::process::ExitCode;

use anyhow::Context;
use iotcane_app::{Actor, App, AppError};
use iotcane_model::formats::{self, ApplicationContextError, Format};
use iotcane_model::{Tenant, Violations};
use iotcane_store::{ChangeSource, KnowledgeStore};
use serde_json::Value;

use crate::cli::RecommendArgs;
use crate::settings::Settings;

/// `iotcane recommend CONTEXT.json` (or `.jsonld`, `.ttl`, `.nt`): recommends from the local store and keeps the
/// answer, as `POST /api/v1/recommendations` does. Exits 1 when the context is invalid
/// or nothing is valid.
pub async fn run(settings: &Settings, args: RecommendArgs) -> anyhow::Result<ExitCode> {
    let tenant: Tenant = args.tenant.parse().context("--tenant")?;
    let name = args.context.display().to_string();
    let bytes = std::fs::read(&args.context).with_context(|| format!("cannot read {name}"))?;
    let context: Value = match Format::from_path(&name) {
        Some(format) if formats::is_rdf(format) => {
            match formats::read_application_context(format, &bytes) {
                Ok(context) => context,
                Err(ApplicationContextError::Syntax(e)) => anyhow::bail!("{name}: {e}"),
                Err(ApplicationContextError::Shape(violations)) => {
                    print_violations(&name, &violations);
                    return Ok(ExitCode::from(1));
                }
            }
        }
        _ => serde_json::from_slice(&bytes).with_context(|| format!("{name} is not valid JSON"))?,
    };
    let store = KnowledgeStore::open(settings.store_config()).await?;
    let app = App::new(store.clone());
    let actor = Actor {
        name: "cli".into(),
        source: ChangeSource::Cli,
    };
    let answer = app.recommend(&tenant, &context, &actor).await;
    store.close().await;
    let rec = match answer {
        Ok(rec) => rec,
        Err(AppError::Invalid(violations)) => {
            print_violations(&name, &violations);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rec)?);
    } else {
        print_summary(&rec.id, &rec.answer);
    }
    let found = rec
        .answer
        .get("configurations")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_violations(name: &str, violations: &Violations) {
    eprintln!("{name}: the context is invalid:");
    for v in &violations.0 {
        eprintln!(
            "  - {}: {}",
            if v.path.is_empty() { "/" } else { &v.path },
            v.message
        );
    }
}

fn print_summary(id: &str, answer: &Value) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    println!("recommendation {id}: {}", text(answer.get("summary")));
    for c in answer
        .get("configurations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = c.get("totals");
        let num = |k: &str| {
            t.and_then(|t| t.get(k))
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
        };
        println!(
            "\n#{} objective {:.4} — {} (processing: {}) — {:.1} ms, availability {:.5}, {:.2} {}/month + {:.2} hardware, {:.2} W",
            c.get("rank").and_then(Value::as_u64).unwrap_or(0),
            c.get("objective").and_then(Value::as_f64).unwrap_or(0.0),
            text(c.get("region")),
            text(c.get("processing")),
            num("latencyMs"),
            num("availability"),
            num("monthlyCost"),
            text(t.and_then(|t| t.get("currency"))),
            num("hardwareCost"),
            num("energyW"),
        );
        for b in c
            .get("bindings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!(
                "  {:<32} {:<6} {} × {}",
                text(b.get("requirement")),
                text(b.get("role")),
                b.get("quantity").and_then(Value::as_u64).unwrap_or(0),
                text(b.get("resource")),
            );
        }
        let tight: Vec<String> = c
            .get("constraints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("tight").and_then(Value::as_bool) == Some(true))
            .map(|r| format!("{} ({})", text(r.get("name")), text(r.get("subject"))))
            .collect();
        if !tight.is_empty() {
            println!("  tight: {}", tight.join(", "));
        }
    }
    if let Some(conflict) = answer.get("conflict") {
        println!("\nconflict: {}", text(conflict.get("detail")));
    }
    for r in answer
        .get("rejected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(8)
    {
        println!(
            "rejected {} for {}: {} — {}",
            text(r.get("resource")),
            text(r.get("requirement")),
            text(r.get("constraint")),
            text(r.get("detail"))
        );
    }
}
