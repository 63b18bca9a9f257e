//! Ripple-down refinement rules: which rules fire for a context, what their conclusions
//! do to candidates, and which cornerstone cases a new rule would change.
//!
//! A rule fires when its condition holds for the context and, if it refines a parent,
//! the parent fires too. A firing rule's conclusion holds unless one of its refinements
//! fires: the refinement's conclusion replaces it (`allow` just withdraws it).

use std::collections::{BTreeMap, BTreeSet};

use iotcane_model::{
    BindingRole, Protocol, Resource, ResourceBody, ResourceId, Rule, RuleAction, RuleCondition,
    RuleTarget,
};
use serde::Serialize;
use serde_json::Value;

/// The refinement depth followed at most (deeper chains, and cycles, do not fire).
const MAX_DEPTH: usize = 32;

/// What the condition of a rule looks at in a context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextFacts {
    pub domain: String,
    pub sites: BTreeSet<String>,
    pub properties: BTreeSet<String>,
}

impl ContextFacts {
    /// The facts of a context in its JSON form (a case keeps its context as JSON).
    pub fn of_json(context: &Value) -> Self {
        let requirements = ["sensing", "actuation"]
            .iter()
            .filter_map(|k| context.get(*k).and_then(Value::as_array))
            .flatten();
        let mut facts = ContextFacts {
            domain: context
                .get("domain")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            ..ContextFacts::default()
        };
        for r in requirements {
            if let Some(site) = r.get("site").and_then(Value::as_str) {
                facts.sites.insert(site.to_owned());
            }
            if let Some(p) = r.get("property").and_then(Value::as_str) {
                facts.properties.insert(p.to_owned());
            }
        }
        facts
    }
}

fn holds(condition: &RuleCondition, facts: &ContextFacts) -> bool {
    condition.domain.as_ref().is_none_or(|d| *d == facts.domain)
        && (condition.sites.is_empty() || !condition.sites.is_disjoint(&facts.sites))
        && (condition.properties.is_empty() || !condition.properties.is_disjoint(&facts.properties))
}

/// A rule whose conclusion holds for a context.
#[derive(Debug, Clone, PartialEq)]
pub struct Conclusion {
    pub rule: ResourceId,
    pub action: RuleAction,
    pub target: RuleTarget,
    pub reason: String,
}

/// The conclusions that hold for a context, in rule-id order.
pub fn conclusions(rules: &[Resource], facts: &ContextFacts) -> Vec<Conclusion> {
    let by_id: BTreeMap<&ResourceId, &Rule> = rules
        .iter()
        .filter_map(|r| match &r.body {
            ResourceBody::Rule(rule) => Some((&r.id, rule)),
            _ => None,
        })
        .collect();
    let fires = |id: &ResourceId| -> bool {
        let mut current = Some(id);
        for _ in 0..MAX_DEPTH {
            let Some(id) = current else {
                return true;
            };
            let Some(rule) = by_id.get(id) else {
                return false;
            };
            if !holds(&rule.condition, facts) {
                return false;
            }
            current = rule.refines.as_ref();
        }
        false
    };
    let firing: BTreeSet<&ResourceId> = by_id.keys().copied().filter(|id| fires(id)).collect();
    firing
        .iter()
        .filter(|id| {
            // Replaced by a firing refinement?
            !firing
                .iter()
                .any(|other| by_id[*other].refines.as_ref() == Some(**id))
        })
        .filter_map(|id| {
            let rule = by_id[*id];
            (rule.action != RuleAction::Allow).then(|| Conclusion {
                rule: (*id).clone(),
                action: rule.action,
                target: rule.target.clone(),
                reason: rule.reason.clone(),
            })
        })
        .collect()
}

/// What a rule target is compared with: one candidate resource.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub role: BindingRole,
    pub id: &'a ResourceId,
    /// The catalog model a registered resource is an instance of.
    pub model: Option<&'a ResourceId>,
    pub manufacturer: Option<&'a str>,
    pub protocols: &'a BTreeSet<Protocol>,
    pub provider: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// Whether every stated part of the target matches the subject.
pub fn targets(target: &RuleTarget, s: &Subject<'_>) -> bool {
    target.role.is_none_or(|r| r == s.role)
        && target
            .resource
            .as_ref()
            .is_none_or(|r| r == s.id || Some(r) == s.model)
        && target.manufacturer.as_ref().is_none_or(|m| {
            s.manufacturer
                .is_some_and(|own| own.eq_ignore_ascii_case(m))
        })
        && target
            .protocol
            .is_none_or(|p| s.role == BindingRole::Device && s.protocols.contains(&p))
        && target
            .provider
            .as_ref()
            .is_none_or(|p| s.provider == Some(p.as_str()))
        && target
            .region
            .as_ref()
            .is_none_or(|r| s.region == Some(r.as_str()))
}

/// A cornerstone case whose conclusion a new rule would change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedCase {
    pub case: String,
    /// The case's bindings the rule would exclude: requirement and resource.
    pub bindings: Vec<ChangedBinding>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedBinding {
    pub requirement: String,
    pub resource: String,
}

/// The cases whose accepted configuration `rule` (added to `existing`) would exclude a
/// binding of: every stored case is a cornerstone. `resolve` looks a bound resource up.
/// Only exclusions change a conclusion; preferences re-rank without invalidating.
pub fn changed_cases(
    rule: &Resource,
    existing: &[Resource],
    cases: &[Resource],
    resolve: &dyn Fn(&ResourceId) -> Option<Resource>,
) -> Vec<ChangedCase> {
    let mut all: Vec<Resource> = existing
        .iter()
        .filter(|r| r.id != rule.id)
        .cloned()
        .collect();
    all.push(rule.clone());
    let before: Vec<Resource> = existing
        .iter()
        .filter(|r| r.id != rule.id)
        .cloned()
        .collect();
    let mut out = Vec::new();
    for case in cases {
        let ResourceBody::Case(body) = &case.body else {
            continue;
        };
        let facts = ContextFacts::of_json(&Value::Object(body.context.clone()));
        let was: Vec<Conclusion> = conclusions(&before, &facts)
            .into_iter()
            .filter(|c| c.action == RuleAction::Exclude)
            .collect();
        let now: Vec<Conclusion> = conclusions(&all, &facts)
            .into_iter()
            .filter(|c| c.action == RuleAction::Exclude)
            .collect();
        if was == now {
            continue;
        }
        let mut bindings = Vec::new();
        for binding in &body.configuration.bindings {
            let resolved = resolve(&binding.resource);
            let (model, manufacturer, protocols, provider, region) =
                resolved.as_ref().map(subject_parts).unwrap_or_default();
            let subject = Subject {
                role: binding.role,
                id: &binding.resource,
                model: model.as_ref(),
                manufacturer: manufacturer.as_deref(),
                protocols: &protocols,
                provider: provider.as_deref(),
                region: region.as_deref(),
            };
            let excluded_now = now.iter().any(|c| targets(&c.target, &subject));
            let excluded_before = was.iter().any(|c| targets(&c.target, &subject));
            if excluded_now && !excluded_before {
                bindings.push(ChangedBinding {
                    requirement: binding.requirement.clone(),
                    resource: binding.resource.to_string(),
                });
            }
        }
        if !bindings.is_empty() {
            out.push(ChangedCase {
                case: case.id.to_string(),
                bindings,
            });
        }
    }
    out
}

type Parts = (
    Option<ResourceId>,
    Option<String>,
    BTreeSet<Protocol>,
    Option<String>,
    Option<String>,
);

/// The parts of a resource a rule target may name.
fn subject_parts(resource: &Resource) -> Parts {
    match &resource.body {
        ResourceBody::Device(d) => (
            d.placement.instance_of.clone(),
            d.manufacturer.clone(),
            d.protocols.clone(),
            None,
            None,
        ),
        ResourceBody::EdgeNode(e) => (
            e.placement.instance_of.clone(),
            e.manufacturer.clone(),
            e.southbound_protocols.clone(),
            None,
            None,
        ),
        ResourceBody::CloudOffering(c) => (
            None,
            None,
            c.protocols.clone(),
            Some(c.provider.clone()),
            Some(c.region.clone()),
        ),
        _ => Parts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(value: Value) -> Resource {
        Resource::from_json(value).unwrap()
    }

    fn icu_rules() -> Vec<Resource> {
        vec![
            rule(
                json!({"id": "no-ble-in-healthcare", "kind": "rule", "name": "no BLE",
                "condition": {"domain": "healthcare"}, "action": "exclude",
                "target": {"role": "device", "protocol": "ble"}, "reason": "drop-outs"}),
            ),
            rule(
                json!({"id": "ble-ok-in-wards", "kind": "rule", "name": "wards may",
                "refines": "no-ble-in-healthcare", "condition": {"sites": ["ward-7"]},
                "action": "allow", "target": {"role": "device", "protocol": "ble"},
                "reason": "ward beds are not critical"}),
            ),
        ]
    }

    #[test]
    fn a_firing_refinement_replaces_its_parent() {
        let rules = icu_rules();
        let icu = ContextFacts::of_json(
            &json!({"domain": "healthcare", "sensing": [{"property": "ecg", "site": "icu-3"}]}),
        );
        let ward = ContextFacts::of_json(
            &json!({"domain": "healthcare", "sensing": [{"property": "ecg", "site": "ward-7"}]}),
        );
        let farm = ContextFacts::of_json(&json!({"domain": "agriculture"}));
        assert_eq!(conclusions(&rules, &icu).len(), 1);
        assert!(
            conclusions(&rules, &ward).is_empty(),
            "allow withdraws the exclusion"
        );
        assert!(conclusions(&rules, &farm).is_empty());
    }

    #[test]
    fn targets_match_every_stated_part() {
        let id: ResourceId = "polar-h10".parse().unwrap();
        let protocols: BTreeSet<Protocol> = [Protocol::Ble].into();
        let subject = Subject {
            role: BindingRole::Device,
            id: &id,
            model: None,
            manufacturer: Some("Polar Electro"),
            protocols: &protocols,
            provider: None,
            region: None,
        };
        let by_protocol = RuleTarget {
            protocol: Some(Protocol::Ble),
            ..RuleTarget::default()
        };
        assert!(targets(&by_protocol, &subject));
        let by_vendor = RuleTarget {
            manufacturer: Some("polar electro".into()),
            role: Some(BindingRole::Edge),
            ..RuleTarget::default()
        };
        assert!(!targets(&by_vendor, &subject), "the role differs");
    }
}
