//! The declarative filter syntax of list requests, turned into a typed store query.
//!
//! `GET /api/v1/devices?observes=heartRate&live.status=online&site=ward-7&live.batteryPct[gt]=20`
//! reads "online heart-rate sensors in site ward-7 with battery above 20 %". Field names
//! are native key paths; values become typed RDF terms through the model's field table,
//! never query text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iotcane_app::App;
use iotcane_app::store::{After, Cmp, Condition, Filter, Find, Near, Order, SortKey};
use iotcane_model::fields::{Field, field, fields, has_location};
use iotcane_model::{Kind, Resource, ResourceId, Tenant};
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// The reserved parameters of a list request, as the OpenAPI document shows them; every
/// other parameter is a filter (see [`ListQuery`]).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the OpenAPI derive only.
pub struct ListParams {
    /// At most this many items (default 100).
    limit: Option<usize>,
    /// Where the previous page ended (its `nextCursor`).
    cursor: Option<String>,
    /// `field` or `-field` (descending), or `distance` with `near`.
    sort: Option<String>,
    /// `lat,lon,radius`: within `radius` (metres, or with a `m`/`km` suffix) of a point.
    near: Option<String>,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    limit: usize,
    find: Find,
}

/// One page of results.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Resource>,
    pub next_cursor: Option<String>,
}

const RESERVED: [&str; 4] = ["limit", "cursor", "sort", "near"];

impl ListQuery {
    /// Reads the query parameters of a list request over `kind`.
    pub fn parse(
        tenant: &Tenant,
        kind: Kind,
        pairs: &[(String, String)],
        max_page: usize,
    ) -> ApiResult<ListQuery> {
        let mut find = Find::new(tenant.clone(), Some(kind));
        let mut limit = 100.min(max_page);
        let mut cursor = None;
        let mut sort = None;
        let mut near = None;
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=max_page).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_parameter("limit", format!("must be 1 to {max_page}"))
                        })?;
                }
                "cursor" => cursor = Some(value.clone()),
                "sort" => sort = Some(value.clone()),
                "near" => near = Some(value.clone()),
                _ => find.filters.push(parse_filter(kind, key, value)?),
            }
        }
        if let Some(raw) = &near {
            if !has_location(Some(kind)) {
                return Err(ApiError::bad_parameter(
                    "near",
                    format!("{} have no location", kind.as_str()),
                ));
            }
            find.near = Some(parse_near(raw)?);
        }
        find.order = match sort.as_deref() {
            None | Some("id") => Order::Id,
            Some("distance") if find.near.is_some() => Order::Distance,
            Some("distance") => {
                return Err(ApiError::bad_parameter("sort", "`distance` needs `near`"));
            }
            Some(raw) => {
                let (name, descending) = match raw.strip_prefix('-') {
                    Some(name) => (name, true),
                    None => (raw, false),
                };
                let f = known_field(kind, "sort", name)?;
                Order::Field {
                    path: f.path,
                    descending,
                }
            }
        };
        find.limit = limit.saturating_add(1);
        if let Some(raw) = &cursor {
            find.after = Some(decode_cursor(raw)?);
        }
        Ok(ListQuery { limit, find })
    }

    /// Runs the query: one page, and the cursor of the next.
    pub async fn run(self, app: &App) -> ApiResult<Page> {
        let tenant = self.find.tenant.clone();
        let mut found = app.store().find(self.find).await?;
        let more = found.len() > self.limit;
        found.truncate(self.limit);
        let next_cursor = match (more, found.last()) {
            (true, Some(last)) => Some(encode_cursor(&last.key, &last.id)),
            _ => None,
        };
        let mut items = Vec::with_capacity(found.len());
        for f in found {
            // Deleted between the query and here: leave it out.
            if let Some(stored) = app.get(&tenant, &f.id)? {
                items.push(stored.resource);
            }
        }
        Ok(Page { items, next_cursor })
    }
}

fn known_field(kind: Kind, parameter: &str, name: &str) -> ApiResult<Field> {
    field(Some(kind), name).ok_or_else(|| {
        let known: Vec<&str> = fields(Some(kind)).iter().map(|f| f.key).collect();
        ApiError::bad_parameter(
            parameter,
            format!(
                "`{name}` is not a field of {}; fields: {}",
                kind.as_str(),
                known.join(", ")
            ),
        )
    })
}

/// `field=value` or `field[op]=value`.
fn parse_filter(kind: Kind, key: &str, value: &str) -> ApiResult<Filter> {
    let (name, op) = match key.split_once('[') {
        Some((name, rest)) => {
            let op = rest.strip_suffix(']').ok_or_else(|| {
                ApiError::bad_parameter(key, "an operator is written `field[op]`")
            })?;
            (name, op)
        }
        None => (key, "eq"),
    };
    if RESERVED.contains(&name) {
        return Err(ApiError::bad_parameter(
            key,
            "is a reserved parameter, not a field",
        ));
    }
    let f = known_field(kind, key, name)?;
    let term = |raw: &str| f.term(raw).map_err(|e| ApiError::bad_parameter(key, e));
    let condition = match op {
        "in" => {
            let values: Vec<_> = value
                .split(',')
                .map(str::trim)
                .map(term)
                .collect::<ApiResult<_>>()?;
            if values.is_empty() || values.len() > 100 {
                return Err(ApiError::bad_parameter(key, "`in` takes 1 to 100 values"));
            }
            Condition::OneOf(values)
        }
        op => {
            let cmp = match op {
                "eq" => Cmp::Eq,
                "ne" => Cmp::Ne,
                "lt" => Cmp::Lt,
                "le" => Cmp::Le,
                "gt" => Cmp::Gt,
                "ge" => Cmp::Ge,
                "prefix" => Cmp::StartsWith,
                other => {
                    return Err(ApiError::bad_parameter(
                        key,
                        format!(
                            "unknown operator `{other}`; use eq, ne, lt, le, gt, ge, in or prefix"
                        ),
                    ));
                }
            };
            Condition::Cmp(cmp, term(value)?)
        }
    };
    Ok(Filter {
        path: f.path,
        condition,
    })
}

/// `lat,lon,radius` with the radius in metres, or suffixed `m` or `km`.
fn parse_near(raw: &str) -> ApiResult<Near> {
    let bad = |detail: &str| ApiError::bad_parameter("near", detail.to_owned());
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    let [lat, lon, radius] = parts.as_slice() else {
        return Err(bad("must be `lat,lon,radius`, e.g. `52.52,13.40,2km`"));
    };
    let number = |s: &str| s.parse::<f64>().ok().filter(|n| n.is_finite());
    let lat = number(lat)
        .filter(|l| (-90.0..=90.0).contains(l))
        .ok_or_else(|| bad("latitude must be -90 to 90"))?;
    let lon = number(lon)
        .filter(|l| (-180.0..=180.0).contains(l))
        .ok_or_else(|| bad("longitude must be -180 to 180"))?;
    let radius_m = if let Some(km) = radius.strip_suffix("km") {
        number(km).map(|k| k * 1000.0)
    } else {
        number(radius.strip_suffix('m').unwrap_or(radius))
    }
    .filter(|r| *r > 0.0)
    .ok_or_else(|| bad("radius must be a positive distance, e.g. `500m` or `2km`"))?;
    Ok(Near { lat, lon, radius_m })
}

fn encode_cursor(key: &SortKey, id: &ResourceId) -> String {
    let key = match key {
        SortKey::Number(n) => json!(n),
        SortKey::Text(t) => json!(t),
        SortKey::Missing => Value::Null,
    };
    URL_SAFE_NO_PAD.encode(json!({ "k": key, "id": id.as_str() }).to_string())
}

fn decode_cursor(raw: &str) -> ApiResult<After> {
    let bad = || ApiError::bad_parameter("cursor", "is not a cursor this service issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<ResourceId>().ok())
        .ok_or_else(bad)?;
    let key = match value.get("k") {
        Some(Value::Number(n)) => SortKey::Number(n.as_f64().ok_or_else(bad)?),
        Some(Value::String(s)) => SortKey::Text(s.clone()),
        Some(Value::Null) | None => SortKey::Missing,
        Some(_) => return Err(bad()),
    };
    Ok(After { key, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_dashboard_example_parses() {
        let q = ListQuery::parse(
            &"acme".parse().unwrap(),
            Kind::Device,
            &pairs(&[
                ("observes", "heartRate"),
                ("live.status", "online"),
                ("site", "ward-7"),
                ("live.batteryPct[gt]", "20"),
                ("sort", "-live.batteryPct"),
            ]),
            1000,
        )
        .unwrap();
        assert_eq!(q.find.filters.len(), 4);
        assert!(matches!(
            q.find.order,
            Order::Field {
                descending: true,
                ..
            }
        ));
    }

    #[test]
    fn bad_filters_name_the_parameter() {
        let err = |q: &[(&str, &str)]| match ListQuery::parse(
            &"acme".parse().unwrap(),
            Kind::Device,
            &pairs(q),
            1000,
        ) {
            Err(ApiError::BadParameter { parameter, .. }) => parameter,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(&[("battery[gt]", "20")]), "battery[gt]");
        assert_eq!(
            err(&[("live.batteryPct[gt]", "lots")]),
            "live.batteryPct[gt]"
        );
        assert_eq!(
            err(&[("live.batteryPct[around]", "2")]),
            "live.batteryPct[around]"
        );
        assert_eq!(err(&[("near", "1,2")]), "near");
        assert_eq!(err(&[("limit", "0")]), "limit");
        assert_eq!(err(&[("cursor", "!!")]), "cursor");
        assert_eq!(err(&[("sort", "distance")]), "sort");
    }

    #[test]
    fn cursors_round_trip() {
        let id: ResourceId = "hr-1".parse().unwrap();
        for key in [
            SortKey::Number(2.5),
            SortKey::Text("x".into()),
            SortKey::Missing,
        ] {
            let after = decode_cursor(&encode_cursor(&key, &id)).unwrap();
            assert_eq!(after.key, key);
            assert_eq!(after.id, id);
        }
    }
}
