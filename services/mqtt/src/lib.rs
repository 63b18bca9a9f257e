//! IoT-CANE's MQTT gateway.
//!
//! Devices register, report their live context and their applied configuration, and
//! deregister by publishing to the topics of [`topics`]; the gateway answers on
//! `accepted`/`rejected` topics (and on an MQTT 5 response topic), publishes each
//! device's desired configuration (retained), the change events of the knowledge base
//! and the recommendation events. Clients ask for recommendations by request and reply.
//! Only this crate knows topics and payload encodings; the use cases are the app layer's.
//!
//! Delivery: the gateway's session is persistent (no clean start, a session expiry), its
//! subscriptions are QoS 1, and it acknowledges a message to the broker only once what
//! the message asked for is in the journal (or the message is refused and dead-lettered).
//! Messages that arrive while the service is down wait in the broker. A crash between the
//! journal commit and the acknowledgement makes the broker deliver that message again:
//! delivery is at least once. Recommendation requests are the exception: they are
//! acknowledged once handed to their worker (see `recommend`).

pub mod broker;
mod gateway;
mod outbound;
mod recommend;
pub mod topics;

pub use gateway::{MqttBinding, MqttConfig, MqttError, MqttGateway, Secret};
