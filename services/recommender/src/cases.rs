//! Case-based reasoning: past cases indexed by the features of their contexts, retrieved
//! by a weighted similarity.
//!
//! Similarity of a query context Q and a case's context C, in [0, 1]:
//!
//! | feature | weight | measure |
//! |---|---|---|
//! | domain | 0.25 | 1 when equal, else 0 |
//! | properties sensed or actuated | 0.25 | Jaccard |
//! | device protocols allowed | 0.10 | Jaccard |
//! | sites | 0.10 | Jaccard |
//! | total device count | 0.10 | ratio |
//! | maxLatencyMs | 0.05 | ratio |
//! | minAvailability, in nines (−log10(1−a), at most 6) | 0.05 | ratio |
//! | maxMonthlyCost | 0.05 | ratio |
//! | allowed regions | 0.05 | Jaccard |
//!
//! Jaccard(A, B) = |A∩B| / |A∪B| (1 when both are empty); ratio(a, b) = min/max (1 when
//! both are absent or both zero, 0 when only one is stated).

use std::collections::HashMap;

use iotcane_model::{BindingRole, OutcomeStatus, Resource, ResourceBody, ResourceId};
use serde::Serialize;
use serde_json::Value;

/// How many cases a recommendation retrieves at most.
pub const CASE_K: usize = 3;
/// The least similarity a retrieved case has.
pub const MIN_SIMILARITY: f64 = 0.5;

const W_DOMAIN: f64 = 0.25;
const W_PROPERTIES: f64 = 0.25;
const W_PROTOCOLS: f64 = 0.10;
const W_SITES: f64 = 0.10;
const W_COUNT: f64 = 0.10;
const W_LATENCY: f64 = 0.05;
const W_AVAILABILITY: f64 = 0.05;
const W_COST: f64 = 0.05;
const W_REGIONS: f64 = 0.05;

/// The features of one context, with texts interned as numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    domain: u32,
    properties: Vec<u32>,
    protocols: Vec<u32>,
    sites: Vec<u32>,
    regions: Vec<u32>,
    devices: f64,
    latency_ms: Option<f64>,
    nines: Option<f64>,
    budget: Option<f64>,
}

/// One indexed case.
#[derive(Debug, Clone)]
pub struct IndexedCase {
    pub id: ResourceId,
    pub name: String,
    features: Features,
    /// How much the case's outcome recommends it: success 1, partial 0.5, failure 0, none
    /// 0.75; times rating/5 when rated.
    pub outcome_factor: f64,
    /// Its bindings: role and resource.
    pub bindings: Vec<(String, BindingRole, ResourceId)>,
}

/// A retrieved case and its similarity to the query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retrieved {
    pub case: String,
    pub name: String,
    pub similarity: f64,
    pub outcome_factor: f64,
}

/// The cases of one tenant, ready for retrieval. Cheap to query, built once and updated
/// as cases change.
#[derive(Debug, Clone, Default)]
pub struct CaseIndex {
    words: HashMap<String, u32>,
    cases: Vec<IndexedCase>,
    by_id: HashMap<ResourceId, usize>,
}

impl CaseIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.cases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Adds or replaces a case; other kinds are ignored.
    pub fn upsert(&mut self, resource: &Resource) {
        let ResourceBody::Case(case) = &resource.body else {
            return;
        };
        let words = &mut self.words;
        let features = extract(&Value::Object(case.context.clone()), &mut |text| {
            if let Some(&n) = words.get(text) {
                return n;
            }
            let n = u32::try_from(words.len()).unwrap_or(u32::MAX - 1);
            words.insert(text.to_owned(), n);
            n
        });
        let outcome_factor = case.outcome.as_ref().map_or(0.75, |o| {
            let status = match o.status {
                OutcomeStatus::Success => 1.0,
                OutcomeStatus::Partial => 0.5,
                OutcomeStatus::Failure => 0.0,
            };
            status * o.rating.map_or(1.0, |r| (r / 5.0).clamp(0.0, 1.0))
        });
        let indexed = IndexedCase {
            id: resource.id.clone(),
            name: resource.name.clone(),
            features,
            outcome_factor,
            bindings: case
                .configuration
                .bindings
                .iter()
                .map(|b| (b.requirement.clone(), b.role, b.resource.clone()))
                .collect(),
        };
        match self.by_id.get(&resource.id) {
            Some(&i) => self.cases[i] = indexed,
            None => {
                self.by_id.insert(resource.id.clone(), self.cases.len());
                self.cases.push(indexed);
            }
        }
    }

    /// Removes a case, if indexed.
    pub fn remove(&mut self, id: &ResourceId) {
        if let Some(i) = self.by_id.remove(id) {
            self.cases.swap_remove(i);
            if let Some(moved) = self.cases.get(i) {
                self.by_id.insert(moved.id.clone(), i);
            }
        }
    }

    pub fn get(&self, id: &ResourceId) -> Option<&IndexedCase> {
        self.by_id.get(id).map(|&i| &self.cases[i])
    }

    /// The features of a query context; words no case has match nothing.
    pub fn query_features(&self, context: &Value) -> Features {
        extract(context, &mut |text| {
            self.words.get(text).copied().unwrap_or(u32::MAX)
        })
    }

    /// The `k` most similar cases with at least [`MIN_SIMILARITY`], most similar first;
    /// ties go to the smaller id.
    pub fn retrieve(&self, query: &Features, k: usize) -> Vec<(usize, f64)> {
        let mut best: Vec<(usize, f64)> = Vec::with_capacity(k + 1);
        let kth = |best: &Vec<(usize, f64)>| {
            if best.len() < k {
                MIN_SIMILARITY
            } else {
                best.last().map_or(MIN_SIMILARITY, |b| b.1)
            }
        };
        for (i, case) in self.cases.iter().enumerate() {
            // A case of another domain is at most 1 − W_DOMAIN similar.
            if case.features.domain != query.domain && 1.0 - W_DOMAIN < kth(&best) {
                continue;
            }
            let s = similarity(query, &case.features);
            if s < MIN_SIMILARITY {
                continue;
            }
            let position = best.partition_point(|&(j, t)| {
                t > s || (t == s && self.cases[j].id.as_str() < case.id.as_str())
            });
            if position < k {
                best.insert(position, (i, s));
                best.truncate(k);
            }
        }
        best
    }

    pub fn case(&self, index: usize) -> &IndexedCase {
        &self.cases[index]
    }
}

/// The features of a context in its JSON form, with `word` naming each text.
fn extract(context: &Value, word: &mut dyn FnMut(&str) -> u32) -> Features {
    let requirements: Vec<&Value> = ["sensing", "actuation"]
        .iter()
        .filter_map(|k| context.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let texts = |field: &str| -> Vec<String> {
        requirements
            .iter()
            .filter_map(|r| r.get(field).and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    };
    let mut properties: Vec<u32> = texts("property")
        .iter()
        .map(|t| word(&format!("p:{t}")))
        .collect();
    let mut sites: Vec<u32> = texts("site")
        .iter()
        .map(|t| word(&format!("s:{t}")))
        .collect();
    let mut protocols: Vec<u32> = requirements
        .iter()
        .filter_map(|r| r.get("protocols").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| word(&format!("t:{t}")))
        .collect();
    let qos = context.get("qos");
    let mut regions: Vec<u32> = qos
        .and_then(|q| q.get("allowedRegions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| word(&format!("r:{t}")))
        .collect();
    let domain = word(&format!(
        "d:{}",
        context.get("domain").and_then(Value::as_str).unwrap_or("")
    ));
    for set in [&mut properties, &mut sites, &mut protocols, &mut regions] {
        set.sort_unstable();
        set.dedup();
    }
    let devices = requirements
        .iter()
        .map(|r| r.get("count").and_then(Value::as_f64).unwrap_or(1.0))
        .sum();
    let number = |key: &str| qos.and_then(|q| q.get(key)).and_then(Value::as_f64);
    Features {
        domain,
        properties,
        protocols,
        sites,
        regions,
        devices,
        latency_ms: number("maxLatencyMs"),
        nines: number("minAvailability").map(nines),
        budget: number("maxMonthlyCost"),
    }
}

fn nines(a: f64) -> f64 {
    if a >= 1.0 {
        6.0
    } else {
        (-(1.0 - a).log10()).clamp(0.0, 6.0)
    }
}

/// The documented weighted similarity of two contexts' features.
pub fn similarity(a: &Features, b: &Features) -> f64 {
    let s = W_DOMAIN * f64::from(u8::from(a.domain == b.domain))
        + W_PROPERTIES * jaccard(&a.properties, &b.properties)
        + W_PROTOCOLS * jaccard(&a.protocols, &b.protocols)
        + W_SITES * jaccard(&a.sites, &b.sites)
        + W_COUNT * ratio(Some(a.devices), Some(b.devices))
        + W_LATENCY * ratio(a.latency_ms, b.latency_ms)
        + W_AVAILABILITY * ratio(a.nines, b.nines)
        + W_COST * ratio(a.budget, b.budget)
        + W_REGIONS * jaccard(&a.regions, &b.regions);
    s.clamp(0.0, 1.0)
}

/// |A∩B| / |A∪B| over sorted, deduplicated sets.
fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    common as f64 / union as f64
}

fn ratio(a: Option<f64>, b: Option<f64>) -> f64 {
    match (a, b) {
        (None, None) => 1.0,
        (Some(a), Some(b)) => {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            if hi <= 0.0 {
                1.0
            } else {
                (lo / hi).clamp(0.0, 1.0)
            }
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(id: &str, context: Value) -> Resource {
        Resource::from_json(json!({
            "id": id, "kind": "case", "name": id, "domain": "healthcare",
            "context": context,
            "configuration": {"bindings": [
                {"requirement": "sensing:heartRate", "role": "device", "resource": "polar-h10", "quantity": 4}
            ]},
            "outcome": {"status": "success", "rating": 4.0}
        }))
        .unwrap()
    }

    #[test]
    fn the_same_context_is_fully_similar_and_others_rank_below() {
        let ward = json!({"domain": "healthcare", "sensing": [{"property": "heartRate", "count": 40, "site": "ward-7", "protocols": ["ble"]}],
            "qos": {"maxLatencyMs": 200, "minAvailability": 0.999, "maxMonthlyCost": 300, "allowedRegions": ["eu-central-1"]}});
        let farm = json!({"domain": "agriculture", "sensing": [{"property": "soilMoisture", "count": 48, "site": "farm", "protocols": ["lorawan"]}]});
        let mut index = CaseIndex::new();
        index.upsert(&case("ward", ward.clone()));
        index.upsert(&case("farm", farm));
        let query = index.query_features(&ward);
        let found = index.retrieve(&query, 3);
        assert_eq!(found.len(), 1, "the farm case is below the threshold");
        assert_eq!(index.case(found[0].0).id.as_str(), "ward");
        assert!((found[0].1 - 1.0).abs() < 1e-12);
        assert!((index.case(found[0].0).outcome_factor - 0.8).abs() < 1e-12);
        index.remove(&"ward".parse().unwrap());
        assert_eq!(index.len(), 1);
        assert!(index.retrieve(&query, 3).is_empty());
    }

    #[test]
    fn measures_follow_the_documented_definitions() {
        assert!((jaccard(&[1, 2, 3], &[2, 3, 4]) - 0.5).abs() < 1e-12);
        assert!((jaccard(&[], &[]) - 1.0).abs() < 1e-12);
        assert!((ratio(Some(50.0), Some(200.0)) - 0.25).abs() < 1e-12);
        assert_eq!(ratio(Some(1.0), None), 0.0);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }
}
