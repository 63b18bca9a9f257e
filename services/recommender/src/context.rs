//! The declarative application context: what an application needs, as the user states it
//! (`schema/json-schema/context.schema.json`), and the checks no JSON Schema can make.

use std::collections::{BTreeMap, BTreeSet};

use iotcane_model::{Protocol, Violation, Violations};
use serde::{Deserialize, Serialize};

/// The most devices one requirement may ask for.
pub const MAX_COUNT: u32 = 100_000;
/// The fastest sampling rate a requirement may ask for, in Hz.
pub const MAX_SAMPLING_RATE_HZ: f64 = 1_000_000.0;
/// The largest message rate, CPU, memory and volume a context may ask for.
pub const MAX_MESSAGES_PER_SECOND: f64 = 10_000_000.0;
pub const MAX_CPU_CORES: f64 = 4_096.0;
pub const MAX_MEMORY_MB: f64 = 16_777_216.0;
pub const MAX_VOLUME_GB: f64 = 100_000_000.0;
pub const MAX_REQUIREMENTS: usize = 64;

/// What an application needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub domain: String,
    #[serde(default)]
    pub sensing: Vec<SensingRequirement>,
    #[serde(default)]
    pub actuation: Vec<ActuationRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<Processing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(default)]
    pub qos: Qos,
    #[serde(default)]
    pub preferences: Preferences,
    #[serde(default = "default_alternatives")]
    pub alternatives: u32,
    #[serde(default, rename = "use")]
    pub use_: Use,
}

fn default_alternatives() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SensingRequirement {
    pub property: String,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sampling_rate_hz: Option<f64>,
    pub site: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<Protocol>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActuationRequirement {
    pub property: String,
    #[serde(default = "one")]
    pub count: u32,
    pub site: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<Protocol>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProcessingMode {
    Stream,
    Batch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Processing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProcessingMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Qos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_availability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_monthly_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_regions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_residency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_vendors: Vec<String>,
}

/// Relative weights of the four criteria; only their ratios matter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Weights {
    #[serde(default)]
    pub cost: f64,
    #[serde(default)]
    pub latency: f64,
    #[serde(default)]
    pub energy: f64,
    #[serde(default)]
    pub availability: f64,
}

impl Weights {
    /// Equal weights: the default when a context states none.
    pub const EQUAL: Weights = Weights {
        cost: 0.25,
        latency: 0.25,
        energy: 0.25,
        availability: 0.25,
    };

    fn sum(self) -> f64 {
        self.cost + self.latency + self.energy + self.availability
    }

    /// The weights scaled to sum to 1.
    pub fn normalised(self) -> Weights {
        let sum = self.sum();
        if sum > 0.0 && sum.is_finite() {
            Weights {
                cost: self.cost / sum,
                latency: self.latency / sum,
                energy: self.energy / sum,
                availability: self.availability / sum,
            }
        } else {
            Weights::EQUAL
        }
    }
}

/// Which resources configurations are built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Use {
    /// The tenant's registered devices and edge nodes only.
    Registered,
    /// Catalog models only (to be bought).
    Catalog,
    #[default]
    Both,
}

impl Use {
    pub fn registered(self) -> bool {
        matches!(self, Use::Registered | Use::Both)
    }

    pub fn catalog(self) -> bool {
        matches!(self, Use::Catalog | Use::Both)
    }
}

/// Sensing or actuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Need {
    Sensing,
    Actuation,
}

/// One device requirement of a context, flattened from `sensing` or `actuation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// The requirement's name in bindings: `sensing:{property}@{site}`.
    pub key: String,
    /// Where it is in the context, as a JSON pointer.
    pub pointer: String,
    pub need: Need,
    pub property: String,
    pub count: u32,
    /// The rate every device must reach (0 for actuation).
    pub min_rate_hz: f64,
    pub site: String,
    /// Acceptable device protocols; empty means any.
    pub protocols: BTreeSet<Protocol>,
}

impl Requirement {
    /// The messages per second the requirement's devices send (count × minimum rate).
    pub fn messages_per_second(&self) -> f64 {
        f64::from(self.count) * self.min_rate_hz
    }
}

impl AppContext {
    /// Every device requirement, sensing first, in the order stated.
    pub fn requirements(&self) -> Vec<Requirement> {
        let sensing = self.sensing.iter().enumerate().map(|(i, r)| Requirement {
            key: format!("sensing:{}@{}", r.property, r.site),
            pointer: format!("/sensing/{i}"),
            need: Need::Sensing,
            property: r.property.clone(),
            count: r.count,
            min_rate_hz: r.min_sampling_rate_hz.unwrap_or(0.0),
            site: r.site.clone(),
            protocols: r.protocols.iter().copied().collect(),
        });
        let actuation = self.actuation.iter().enumerate().map(|(i, r)| Requirement {
            key: format!("actuation:{}@{}", r.property, r.site),
            pointer: format!("/actuation/{i}"),
            need: Need::Actuation,
            property: r.property.clone(),
            count: r.count,
            min_rate_hz: 0.0,
            site: r.site.clone(),
            protocols: r.protocols.iter().copied().collect(),
        });
        sensing.chain(actuation).collect()
    }

    /// The sites of the requirements, each once, in name order.
    pub fn sites(&self) -> Vec<String> {
        let sites: BTreeSet<&str> = self
            .sensing
            .iter()
            .map(|r| r.site.as_str())
            .chain(self.actuation.iter().map(|r| r.site.as_str()))
            .collect();
        sites.into_iter().map(str::to_owned).collect()
    }

    /// The message rate the cloud ingests: the stated one, else what the devices send.
    pub fn messages_per_second(&self) -> f64 {
        self.processing
            .as_ref()
            .and_then(|p| p.messages_per_second)
            .unwrap_or_else(|| {
                self.requirements()
                    .iter()
                    .map(Requirement::messages_per_second)
                    .sum()
            })
    }

    /// The currency of costs: the stated one, else USD.
    pub fn currency(&self) -> &str {
        self.qos.currency.as_deref().unwrap_or("USD")
    }

    /// The checks beyond the JSON Schema: impossible numbers, contradictions, duplicates.
    /// Every violation names the field by its JSON pointer.
    pub fn check(&self) -> Result<(), Violations> {
        let mut out = Vec::new();
        if self.sensing.is_empty() && self.actuation.is_empty() {
            out.push(Violation::new(
                "/sensing",
                "a context needs at least one sensing or actuation requirement",
            ));
        }
        if self.sensing.len() + self.actuation.len() > MAX_REQUIREMENTS {
            out.push(Violation::new(
                "/sensing",
                format!("at most {MAX_REQUIREMENTS} sensing and actuation requirements in all"),
            ));
        }
        if !(1..=20).contains(&self.alternatives) {
            out.push(Violation::new("/alternatives", "must be between 1 and 20"));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for r in self.requirements() {
            if let Some(first) = seen.insert(r.key.clone(), r.pointer.clone()) {
                out.push(Violation::new(
                    &r.pointer,
                    format!(
                        "repeats {first} ({} of `{}` at site `{}`): state one requirement with the total count",
                        if r.need == Need::Sensing { "sensing" } else { "actuation" },
                        r.property,
                        r.site
                    ),
                ));
            }
            if r.count == 0 || r.count > MAX_COUNT {
                out.push(Violation::new(
                    format!("{}/count", r.pointer),
                    format!("must be between 1 and {MAX_COUNT}"),
                ));
            }
            if !(r.min_rate_hz.is_finite() && (0.0..=MAX_SAMPLING_RATE_HZ).contains(&r.min_rate_hz))
            {
                out.push(Violation::new(
                    format!("{}/minSamplingRateHz", r.pointer),
                    format!("must be a positive rate of at most {MAX_SAMPLING_RATE_HZ} Hz"),
                ));
            }
        }
        if let Some(p) = &self.processing {
            bounded(
                &mut out,
                "/processing/messagesPerSecond",
                p.messages_per_second,
                MAX_MESSAGES_PER_SECOND,
            );
            bounded(&mut out, "/processing/cpuCores", p.cpu_cores, MAX_CPU_CORES);
            bounded(&mut out, "/processing/memoryMb", p.memory_mb, MAX_MEMORY_MB);
        }
        if let Some(s) = &self.storage {
            bounded(&mut out, "/storage/volumeGb", s.volume_gb, MAX_VOLUME_GB);
        }
        let q = &self.qos;
        if let Some(latency) = q.max_latency_ms
            && !(latency.is_finite() && latency > 0.0)
        {
            out.push(Violation::new(
                "/qos/maxLatencyMs",
                "must be a positive number of milliseconds",
            ));
        }
        if let Some(a) = q.min_availability
            && !(a > 0.0 && a <= 1.0)
        {
            out.push(Violation::new(
                "/qos/minAvailability",
                "must be a fraction in (0, 1]",
            ));
        }
        if let Some(cost) = q.max_monthly_cost {
            if !(cost.is_finite() && cost >= 0.0) {
                out.push(Violation::new(
                    "/qos/maxMonthlyCost",
                    "must be a non-negative amount",
                ));
            }
            if q.currency.is_none() {
                out.push(Violation::new(
                    "/qos/currency",
                    "is required with maxMonthlyCost: a budget states its currency",
                ));
            }
        }
        if q.allowed_regions.as_ref().is_some_and(Vec::is_empty) {
            out.push(Violation::new(
                "/qos/allowedRegions",
                "is empty, so no cloud region is allowed; leave it out to allow any",
            ));
        }
        if q.allowed_providers.as_ref().is_some_and(Vec::is_empty) {
            out.push(Violation::new(
                "/qos/allowedProviders",
                "is empty, so no provider is allowed; leave it out to allow any",
            ));
        }
        if let Some(residency) = &q.data_residency
            && crate::model::jurisdiction_of_residency(residency).is_none()
        {
            out.push(Violation::new(
                "/qos/dataResidency",
                format!(
                    "`{residency}` names no known jurisdiction; start it with one of {}",
                    crate::model::JURISDICTIONS.join(", ")
                ),
            ));
        }
        if let Some(w) = self.preferences.weights {
            let all = [
                ("cost", w.cost),
                ("latency", w.latency),
                ("energy", w.energy),
                ("availability", w.availability),
            ];
            for (name, value) in all {
                if !(value.is_finite() && value >= 0.0) {
                    out.push(Violation::new(
                        format!("/preferences/weights/{name}"),
                        "must be a non-negative number",
                    ));
                }
            }
            if w.sum() <= 0.0 {
                out.push(Violation::new(
                    "/preferences/weights",
                    "are all zero: give at least one criterion a positive weight, or leave the weights out",
                ));
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(Violations(out))
        }
    }
}

fn bounded(out: &mut Vec<Violation>, pointer: &str, value: Option<f64>, max: f64) {
    if let Some(v) = value
        && !(v.is_finite() && (0.0..=max).contains(&v))
    {
        out.push(Violation::new(
            pointer,
            format!("must be between 0 and {max}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: serde_json::Value) -> AppContext {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn requirements_are_named_by_property_and_site() {
        let ctx = parse(serde_json::json!({
            "domain": "x",
            "sensing": [{"property": "pm25", "count": 3, "minSamplingRateHz": 0.5, "site": "a"}],
            "actuation": [{"property": "valveState", "site": "b"}]
        }));
        let reqs = ctx.requirements();
        assert_eq!(reqs[0].key, "sensing:pm25@a");
        assert_eq!(reqs[1].key, "actuation:valveState@b");
        assert_eq!(reqs[1].count, 1);
        assert!((ctx.messages_per_second() - 1.5).abs() < 1e-12);
        assert_eq!(ctx.sites(), ["a", "b"]);
    }

    #[test]
    fn contradictions_and_impossible_numbers_name_their_field() {
        let ctx = parse(serde_json::json!({
            "domain": "x",
            "sensing": [
                {"property": "pm25", "site": "a", "minSamplingRateHz": 5e6},
                {"property": "pm25", "site": "a"}
            ],
            "qos": {"maxMonthlyCost": 10, "allowedRegions": [], "dataResidency": "Mars"},
            "preferences": {"weights": {"cost": 0}}
        }));
        let violations = ctx.check().unwrap_err();
        let paths: Vec<&str> = violations.0.iter().map(|v| v.path.as_str()).collect();
        for expected in [
            "/sensing/1",
            "/sensing/0/minSamplingRateHz",
            "/qos/currency",
            "/qos/allowedRegions",
            "/qos/dataResidency",
            "/preferences/weights",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
    }
}
