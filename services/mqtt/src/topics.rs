//! The topic tree: what the gateway listens to, where it answers, and how a topic names a
//! tenant and a Thing.
//!
//! ```text
//! {prefix}/{tenant}/things/{id}/register          TD or native JSON  → register/accepted|rejected
//! {prefix}/{tenant}/things/{id}/context           live context       → context/rejected
//! {prefix}/{tenant}/things/{id}/deregister        (any payload)      → deregister/accepted|rejected
//! {prefix}/{tenant}/things/{id}/config/reported   reported config    → config/delta
//! {prefix}/{tenant}/things/{id}/config/desired    retained, published by the service
//! {prefix}/{tenant}/events/{kind}/{id}            change events, published by the service
//! {prefix}/{tenant}/events/recommendation/{id}    recommendation events, published by the service
//! {prefix}/{tenant}/recommendations/request       a context (MQTT 5)  → the response topic
//! {prefix}/{tenant}/recommendations/request/{rid} a context (3.1.1)   → recommendations/reply/{rid}
//! {prefix}/{tenant}/replies/…                     MQTT 5 response topics the service answers on
//! ```
//!
//! A Thing id that is an IRI contains `/`, which cannot sit in one topic level: the id
//! level is percent-encoded (`https%3A%2F%2Fexample.com%2Flamp`), and decoded here. A
//! request id is one topic level too, checked like a Thing id.

use iotcane_model::{ResourceId, Tenant};

/// What a device asks for, read from the topic of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Register,
    Context,
    Deregister,
    ConfigReported,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Register,
        Action::Context,
        Action::Deregister,
        Action::ConfigReported,
    ];

    /// The topic levels after the Thing id.
    pub fn suffix(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Context => "context",
            Action::Deregister => "deregister",
            Action::ConfigReported => "config/reported",
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Context => "context",
            Action::Deregister => "deregister",
            Action::ConfigReported => "config_reported",
        }
    }
}

/// A parsed inbound topic of a Thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub tenant: Tenant,
    pub thing: ResourceId,
    pub action: Action,
}

/// A parsed recommendation request topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendationRequest {
    pub tenant: Tenant,
    /// The `{request-id}` level as sent (MQTT 3.1.1 clients, which have no response
    /// topic): the reply goes to `recommendations/reply/{request-id}`.
    pub request_id: Option<String>,
}

/// Any topic the gateway consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Thing(Inbound),
    Recommendation(RecommendationRequest),
}

impl Request {
    pub fn tenant(&self) -> &Tenant {
        match self {
            Request::Thing(inbound) => &inbound.tenant,
            Request::Recommendation(request) => &request.tenant,
        }
    }

    /// The metric label.
    pub fn action(&self) -> &'static str {
        match self {
            Request::Thing(inbound) => inbound.action.as_str(),
            Request::Recommendation(_) => "recommend",
        }
    }
}

/// Why a topic could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic is not one of the gateway's topics")]
    Unknown,
    #[error("the tenant `{0}` in the topic is not a valid tenant name")]
    BadTenant(String),
    #[error("the Thing id `{id}` in the topic is not valid: {reason}")]
    BadId { id: String, reason: String },
    #[error("the request id `{id}` in the topic is not valid: {reason}")]
    BadRequestId { id: String, reason: String },
}

/// The levels of a recommendation request, after the tenant.
const RECOMMENDATION_REQUEST: &str = "recommendations/request";
/// The levels of a recommendation reply (3.1.1 fallback), after the tenant.
const RECOMMENDATION_REPLY: &str = "recommendations/reply";

/// The gateway's topic tree under one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The filters the gateway subscribes to, optionally in a shared-subscription group.
    /// The denied tree only exists behind the embedded broker's front: on another broker
    /// anyone could publish there, so it is not listened to.
    pub fn subscriptions(&self, share_group: Option<&str>, denied: bool) -> Vec<String> {
        let share = share_group.map_or_else(String::new, |g| format!("$share/{g}/"));
        let mut filters: Vec<String> = Action::ALL
            .iter()
            .map(|a| format!("{share}{}/+/things/+/{}", self.prefix, a.suffix()))
            .collect();
        for suffix in ["", "/+"] {
            filters.push(format!(
                "{share}{}/+/{RECOMMENDATION_REQUEST}{suffix}",
                self.prefix
            ));
        }
        if denied {
            filters.push(format!("{share}{}/#", self.denied_prefix()));
        }
        filters
    }

    /// Where the embedded broker's front moves a message its client may not publish:
    /// `{prefix}-denied/{client's tenant}/{original topic}`.
    pub fn denied_prefix(&self) -> String {
        format!("{}-denied", self.prefix)
    }

    /// Reads any topic the gateway consumes: a Thing's, or a recommendation request.
    pub fn parse_request(&self, topic: &str) -> Result<Request, TopicError> {
        match self.parse_recommendation(topic) {
            Some(request) => request.map(Request::Recommendation),
            None => self.parse(topic).map(Request::Thing),
        }
    }

    /// Reads a recommendation request topic; `None` when the topic is not one.
    fn parse_recommendation(
        &self,
        topic: &str,
    ) -> Option<Result<RecommendationRequest, TopicError>> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        let (tenant, rest) = rest.split_once('/')?;
        let request_id = match rest.strip_prefix(RECOMMENDATION_REQUEST)? {
            "" => None,
            level => Some(level.strip_prefix('/')?),
        };
        Some(read_recommendation(tenant, request_id))
    }

    /// Reads an inbound topic of a Thing.
    pub fn parse(&self, topic: &str) -> Result<Inbound, TopicError> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::Unknown)?;
        let mut levels = rest.splitn(4, '/');
        let (Some(tenant), Some("things"), Some(id), Some(suffix)) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return Err(TopicError::Unknown);
        };
        let action = Action::ALL
            .into_iter()
            .find(|a| a.suffix() == suffix)
            .ok_or(TopicError::Unknown)?;
        let tenant: Tenant = tenant
            .parse()
            .map_err(|_| TopicError::BadTenant(tenant.to_owned()))?;
        let decoded = percent_decode(id).ok_or_else(|| TopicError::BadId {
            id: id.to_owned(),
            reason: "bad percent-encoding".to_owned(),
        })?;
        let thing: ResourceId = decoded.parse().map_err(|e| TopicError::BadId {
            id: decoded.clone(),
            reason: format!("{e}"),
        })?;
        Ok(Inbound {
            tenant,
            thing,
            action,
        })
    }

    /// The tenant level of a topic under the prefix, if there is one.
    pub fn tenant_of<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?
            .split('/')
            .next()
            .filter(|t| !t.is_empty())
    }

    /// Reads a denied topic: the client's own tenant and the topic it tried.
    pub fn parse_denied<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.denied_prefix().as_str())?
            .strip_prefix('/')?;
        rest.split_once('/')
    }

    /// The topic of a Thing's `action`, plus `tail` levels (`accepted`, `rejected`, …).
    pub fn thing(&self, tenant: &Tenant, thing: &ResourceId, tail: &str) -> String {
        format!(
            "{}/{tenant}/things/{}/{tail}",
            self.prefix,
            percent_encode(thing.as_str())
        )
    }

    /// Where the answer to an inbound message goes, for clients without a response topic.
    pub fn answer(&self, inbound: &Inbound, accepted: bool) -> String {
        let outcome = if accepted { "accepted" } else { "rejected" };
        match inbound.action {
            Action::ConfigReported => {
                self.thing(&inbound.tenant, &inbound.thing, "config/rejected")
            }
            action => self.thing(
                &inbound.tenant,
                &inbound.thing,
                &format!("{}/{outcome}", action.suffix()),
            ),
        }
    }

    pub fn desired(&self, tenant: &Tenant, thing: &ResourceId) -> String {
        self.thing(tenant, thing, "config/desired")
    }

    pub fn delta(&self, tenant: &Tenant, thing: &ResourceId) -> String {
        self.thing(tenant, thing, "config/delta")
    }

    /// `{prefix}/{tenant}/recommendations/reply/{request-id}`: the 3.1.1 clients' reply.
    pub fn recommendation_reply(&self, tenant: &Tenant, request_id: &str) -> String {
        format!(
            "{}/{tenant}/{RECOMMENDATION_REPLY}/{request_id}",
            self.prefix
        )
    }

    /// `{prefix}/{tenant}/events/{kind}/{id}`.
    pub fn event(&self, tenant: &str, kind: &str, id: &str) -> String {
        format!(
            "{}/{tenant}/events/{kind}/{}",
            self.prefix,
            percent_encode(id)
        )
    }

    /// Whether a topic is under `{prefix}/{tenant}/replies/`: the only place the gateway
    /// answers an MQTT 5 response topic. Nothing there is consumed by the service, so a
    /// client cannot make the gateway publish a request on its behalf.
    pub fn is_reply_topic(&self, topic: &str, tenant: &str) -> bool {
        topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_prefix(tenant))
            .and_then(|r| r.strip_prefix("/replies/"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['+', '#']))
    }
}

fn read_recommendation(
    tenant: &str,
    request_id: Option<&str>,
) -> Result<RecommendationRequest, TopicError> {
    let tenant: Tenant = tenant
        .parse()
        .map_err(|_| TopicError::BadTenant(tenant.to_owned()))?;
    let request_id = match request_id {
        None => None,
        Some(level) => {
            let bad = |reason: String| TopicError::BadRequestId {
                id: level.to_owned(),
                reason,
            };
            if level.contains('/') {
                return Err(bad("it must be one topic level".to_owned()));
            }
            let decoded =
                percent_decode(level).ok_or_else(|| bad("bad percent-encoding".to_owned()))?;
            decoded
                .parse::<ResourceId>()
                .map_err(|e| bad(e.to_string()))?;
            Some(level.to_owned())
        }
    };
    Ok(RecommendationRequest { tenant, request_id })
}

/// Percent-encodes what cannot sit in one topic level (`/`, the wildcards, `%`).
pub fn percent_encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

fn percent_decode(level: &str) -> Option<String> {
    if !level.contains('%') {
        return Some(level.to_owned());
    }
    let bytes = level.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = level.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_action_and_encoded_ids() {
        let topics = Topics::new("iotcane");
        let inbound = topics
            .parse("iotcane/acme/things/urn:dev:lamp-1/register")
            .expect("register");
        assert_eq!(inbound.tenant.as_str(), "acme");
        assert_eq!(inbound.thing.as_str(), "urn:dev:lamp-1");
        assert_eq!(inbound.action, Action::Register);
        let reported = topics
            .parse("iotcane/acme/things/lamp/config/reported")
            .expect("reported");
        assert_eq!(reported.action, Action::ConfigReported);
        let iri = "https://example.com/things/lamp";
        let topic = topics.thing(
            &"acme".parse().expect("tenant"),
            &iri.parse().expect("id"),
            "context",
        );
        assert_eq!(
            topic,
            "iotcane/acme/things/https:%2F%2Fexample.com%2Fthings%2Flamp/context"
        );
        assert_eq!(topics.parse(&topic).expect("iri").thing.as_str(), iri);
    }

    #[test]
    fn refuses_foreign_and_malformed_topics() {
        let topics = Topics::new("iotcane");
        for topic in [
            "other/acme/things/lamp/register",
            "iotcane/acme/things/lamp",
            "iotcane/acme/devices/lamp/register",
            "iotcane/acme/things/lamp/register/accepted",
            "iotcanex/acme/things/lamp/register",
        ] {
            assert_eq!(topics.parse(topic), Err(TopicError::Unknown), "{topic}");
        }
        assert!(matches!(
            topics.parse("iotcane/Bad Tenant/things/lamp/context"),
            Err(TopicError::BadTenant(_))
        ));
        assert!(matches!(
            topics.parse("iotcane/acme/things/%zz/context"),
            Err(TopicError::BadId { .. })
        ));
    }

    #[test]
    fn parses_recommendation_requests_with_and_without_a_request_id() {
        let topics = Topics::new("iotcane");
        let acme: Tenant = "acme".parse().expect("tenant");
        assert_eq!(
            topics.parse_request("iotcane/acme/recommendations/request"),
            Ok(Request::Recommendation(RecommendationRequest {
                tenant: acme.clone(),
                request_id: None,
            }))
        );
        let with_id = topics
            .parse_request("iotcane/acme/recommendations/request/req-42")
            .expect("with an id");
        assert_eq!(with_id.action(), "recommend");
        let Request::Recommendation(request) = with_id else {
            panic!("not a recommendation request");
        };
        assert_eq!(request.request_id.as_deref(), Some("req-42"));
        assert_eq!(
            topics.recommendation_reply(&acme, "req-42"),
            "iotcane/acme/recommendations/reply/req-42"
        );
        // An encoded IRI is one level, and it is answered on that same level.
        let Ok(Request::Recommendation(iri)) =
            topics.parse_request("iotcane/acme/recommendations/request/urn:x:%2Fa")
        else {
            panic!("an encoded IRI request id");
        };
        assert_eq!(iri.request_id.as_deref(), Some("urn:x:%2Fa"));
        assert!(matches!(
            topics.parse_request("iotcane/acme/things/lamp/context"),
            Ok(Request::Thing(Inbound {
                action: Action::Context,
                ..
            }))
        ));
    }

    #[test]
    fn refuses_malformed_recommendation_requests() {
        let topics = Topics::new("iotcane");
        for topic in [
            "iotcane/acme/recommendations/request/",
            "iotcane/acme/recommendations/request/a/b",
            "iotcane/acme/recommendations/request/-dash-first",
            "iotcane/acme/recommendations/request/%zz",
            "iotcane/acme/recommendations/request/with space",
        ] {
            assert!(
                matches!(
                    topics.parse_request(topic),
                    Err(TopicError::BadRequestId { .. })
                ),
                "{topic}"
            );
        }
        for topic in [
            "iotcane/acme/recommendations/requests",
            "iotcane/acme/recommendations/reply/req-1",
            "iotcane/acme/recommendations",
            "iotcane/acme/replies/x",
            "other/acme/recommendations/request",
        ] {
            assert_eq!(
                topics.parse_request(topic),
                Err(TopicError::Unknown),
                "{topic}"
            );
        }
        assert!(matches!(
            topics.parse_request("iotcane/Bad Tenant/recommendations/request"),
            Err(TopicError::BadTenant(_))
        ));
        // A recommendation request is not a Thing's topic.
        assert_eq!(
            topics.parse("iotcane/acme/recommendations/request"),
            Err(TopicError::Unknown)
        );
    }

    #[test]
    fn shared_subscriptions_and_tenant_scope() {
        let topics = Topics::new("iotcane");
        let subs = topics.subscriptions(Some("g1"), true);
        assert!(subs.contains(&"$share/g1/iotcane/+/things/+/context".to_owned()));
        assert!(subs.contains(&"$share/g1/iotcane-denied/#".to_owned()));
        assert!(subs.contains(&"$share/g1/iotcane/+/recommendations/request".to_owned()));
        assert!(subs.contains(&"$share/g1/iotcane/+/recommendations/request/+".to_owned()));
        assert!(
            !topics
                .subscriptions(None, false)
                .iter()
                .any(|f| f.contains("denied"))
        );
        assert!(topics.is_reply_topic("iotcane/acme/replies/1", "acme"));
        assert!(!topics.is_reply_topic("iotcane/other/replies/1", "acme"));
        assert!(!topics.is_reply_topic("iotcane/acme/replies/+", "acme"));
        assert!(!topics.is_reply_topic("iotcane/acme/things/x/deregister", "acme"));
        assert!(!topics.is_reply_topic("iotcane/acmex/replies/1", "acme"));
        assert_eq!(
            topics.parse_denied("iotcane-denied/acme/iotcane/other/things/x/context"),
            Some(("acme", "iotcane/other/things/x/context"))
        );
    }
}
