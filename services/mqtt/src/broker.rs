//! The embedded broker: rumqttd behind a small authorizing front.
//!
//! rumqttd routes messages well but knows nothing of tenants: it can check a password,
//! not which topics a client may use. So the public port is ours. The front reads each
//! client's CONNECT, checks its API key, and then relays the connection to rumqttd's MQTT 5
//! listener on a private loopback port. MQTT 3.1.1 clients are translated to MQTT 5 and
//! back (rumqttd 0.20 cannot deliver a message that carries MQTT 5 properties to an MQTT
//! 3.1.1 connection: its listener thread panics). From then on the front looks at every
//! PUBLISH and SUBSCRIBE the client sends:
//!
//! - a PUBLISH to a topic outside the client's tenant, to a topic of its tenant the
//!   gateway does not consume (answers, events, replies), or any PUBLISH from a read-only
//!   key is moved to `{prefix}-denied/{client tenant}/{original topic}`, where the
//!   gateway rejects and dead-letters it;
//! - a SUBSCRIBE filter outside the client's tenant is narrowed to a filter in the
//!   client's own tenant that nothing is ever published to, so it receives nothing.
//!
//! The private port accepts only the process's own random credentials, so the front
//! cannot be bypassed by connecting to it directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iotcane_app::{Keys, Principal, Role};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{Login, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::topics::Topics;

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The largest packet the broker takes (the gateway has its own, smaller, payload limit).
    pub max_packet_size: usize,
    pub max_connections: usize,
    /// Check API keys and tenants (`None`: every client may do everything).
    pub keys: Option<Keys>,
}

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "the embedded MQTT broker cannot listen on {addr}: the port is taken (another MQTT \
         broker, such as Mosquitto, often holds 1883). Give the embedded broker a free \
         address with --mqtt-listen (IOTCANE_MQTT_LISTEN), or use that broker with \
         --mqtt-url mqtt://{addr}"
    )]
    AddrInUse { addr: SocketAddr },
    #[error("the embedded MQTT broker cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the embedded MQTT broker did not start: {0}")]
    Start(String),
}

/// A running embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// The public address (the port is the real one when 0 was asked for).
    pub addr: SocketAddr,
    /// The private MQTT 5 port (the gateway itself connects there).
    pub internal_v5: SocketAddr,
    /// The credentials the private port accepts.
    pub internal_login: (String, String),
}

const INTERNAL_USER: &str = "iotcane-internal";

/// Binds the embedded broker's public address; a taken port is an error that says what
/// to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BrokerError> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            BrokerError::AddrInUse { addr }
        } else {
            BrokerError::Bind { addr, source: e }
        }
    })
}

impl EmbeddedBroker {
    /// Starts rumqttd on a private port and serves the front on `listener` until
    /// `shutdown`. rumqttd itself has no shutdown: its thread ends with the process.
    pub async fn start(
        config: BrokerConfig,
        listener: TcpListener,
        topics: Topics,
        shutdown: CancellationToken,
    ) -> Result<Self, BrokerError> {
        let addr = listener
            .local_addr()
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let internal_v5 = free_loopback_port()?;
        let secret = iotcane_app::keys::random_hex::<24>();
        let rumqttd_config = rumqttd_config(&config, internal_v5, &secret);
        std::thread::Builder::new()
            .name("mqtt-broker".to_owned())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(rumqttd_config);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        wait_until_listening(internal_v5).await?;
        let front = Arc::new(Front {
            topics,
            keys: config.keys,
            max_packet_size: config.max_packet_size,
            internal_v5,
            login: Login {
                username: INTERNAL_USER.to_owned(),
                password: secret.clone(),
            },
        });
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = shutdown.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        let front = front.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                () = shutdown.cancelled() => {}
                                result = front.serve(stream) => {
                                    if let Err(e) = result {
                                        tracing::debug!(%peer, error = %e, "MQTT client connection ended");
                                    }
                                }
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(%addr, "embedded MQTT broker listening");
        Ok(Self {
            addr,
            internal_v5,
            internal_login: (INTERNAL_USER.to_owned(), secret),
        })
    }
}

fn rumqttd_config(config: &BrokerConfig, v5: SocketAddr, secret: &str) -> rumqttd::Config {
    let server = |name: &str, listen: SocketAddr| rumqttd::ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: config.max_packet_size,
            max_inflight_count: 1000,
            auth: Some(HashMap::from([(
                INTERNAL_USER.to_owned(),
                secret.to_owned(),
            )])),
            external_auth: None,
            // Publishes to topics nobody subscribes to yet are kept, not refused.
            dynamic_filters: true,
        },
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..Default::default()
        },
        v5: Some(HashMap::from([("v5".to_owned(), server("v5", v5))])),
        ..Default::default()
    }
}

fn free_loopback_port() -> Result<SocketAddr, BrokerError> {
    // rumqttd cannot report the port of a port-0 listener: take a free one and hand it over.
    let probe = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BrokerError::Start(format!("no free loopback port: {e}")))?;
    probe
        .local_addr()
        .map_err(|e| BrokerError::Start(e.to_string()))
}

async fn wait_until_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(BrokerError::Start(format!(
        "rumqttd did not listen on {addr} within 5 s"
    )))
}

/// What the front knows of one client after its CONNECT.
#[derive(Debug)]
struct Client {
    /// `None` when keys are not checked: the client may do everything.
    principal: Option<Principal>,
}

#[derive(Debug)]
struct Front {
    topics: Topics,
    keys: Option<Keys>,
    max_packet_size: usize,
    internal_v5: SocketAddr,
    login: Login,
}

#[derive(Debug, thiserror::Error)]
enum FrontError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Topic aliases the front keeps per connection (MQTT 5 lets the client pick up to the
/// broker's maximum; beyond this many new ones are not remembered).
const MAX_TOPIC_ALIASES: usize = 1024;

// CONNACK refusals: MQTT 3.1.1 return codes and MQTT 5 reason codes.
const V4_BAD_PROTOCOL: u8 = 0x01;
const V4_NOT_AUTHORIZED: u8 = 0x05;
const V5_NOT_AUTHORIZED: u8 = 0x87;

impl Front {
    async fn serve(&self, mut device: TcpStream) -> Result<(), FrontError> {
        let mut inbox = BytesMut::with_capacity(4096);
        let connect = tokio::time::timeout(
            CONNECT_TIMEOUT,
            read_frame(&mut device, &mut inbox, self.max_packet_size),
        )
        .await
        .map_err(|_| FrontError::Refused("no CONNECT within 10 s".into()))??;
        if connect.first().map(|b| b >> 4) != Some(1) {
            return Err(FrontError::Malformed(
                "the first packet is not CONNECT".into(),
            ));
        }
        let level = protocol_level(&connect)?;
        let v5 = match level {
            4 => false,
            5 => true,
            _ => {
                device
                    .write_all(&connack_refusal(false, V4_BAD_PROTOCOL))
                    .await?;
                return Err(FrontError::Refused(format!(
                    "MQTT protocol level {level} (3.1.1 and 5 are served)"
                )));
            }
        };
        let (client, connect) = match self.admit(&connect, v5).await {
            Ok(admitted) => admitted,
            Err(reason) => {
                let code = if v5 {
                    V5_NOT_AUTHORIZED
                } else {
                    V4_NOT_AUTHORIZED
                };
                device.write_all(&connack_refusal(v5, code)).await?;
                return Err(FrontError::Refused(reason));
            }
        };
        let mut broker = TcpStream::connect(self.internal_v5).await?;
        broker.set_nodelay(true)?;
        device.set_nodelay(true)?;
        broker.write_all(&connect).await?;
        let (mut broker_read, mut broker_write) = broker.into_split();
        let (mut device_read, mut device_write) = device.into_split();
        let max = self.max_packet_size;
        let downstream = tokio::spawn(async move {
            if v5 {
                let _ = tokio::io::copy(&mut broker_read, &mut device_write).await;
            } else {
                let _ = downgrade(&mut broker_read, &mut device_write, max).await;
            }
            let _ = device_write.shutdown().await;
        });
        let upstream = async {
            let mut out = BytesMut::with_capacity(4096);
            // MQTT 5 topic aliases of this connection, resolved here so that every topic
            // is checked in full.
            let mut aliases: HashMap<u16, Bytes> = HashMap::new();
            loop {
                let frame = match read_frame(&mut device_read, &mut inbox, max).await {
                    Ok(frame) => frame,
                    Err(FrontError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let packet = self.vet(&client, &mut aliases, decode_from_client(v5, &frame, max)?);
                out.clear();
                V5.write(packet, &mut out)
                    .map_err(|e| FrontError::Malformed(format!("{e:?}")))?;
                broker_write.write_all(&out).await?;
            }
        };
        let result = upstream.await;
        downstream.abort();
        result
    }

    /// Checks a CONNECT and rewrites it for the private port: the process's credentials,
    /// and a client id scoped to the tenant, so that two tenants' devices with the same
    /// client id cannot take over each other's sessions.
    async fn admit(&self, frame: &Bytes, v5: bool) -> Result<(Client, Bytes), String> {
        let packet = decode(v5, frame, self.max_packet_size).map_err(|e| e.to_string())?;
        let Packet::Connect(mut connect, properties, will, will_properties, login) = packet else {
            return Err("the first packet is not CONNECT".to_owned());
        };
        let principal = match &self.keys {
            None => None,
            Some(keys) => {
                let login = login.ok_or("no credentials: send an API key as the password")?;
                let principal = keys
                    .check(&login.password)
                    .await
                    .map_err(|e| format!("API key refused: {e}"))?;
                if !login.username.is_empty() && login.username != principal.tenant.as_str() {
                    return Err(format!(
                        "the user name `{}` is not the key's tenant",
                        login.username
                    ));
                }
                Some(principal)
            }
        };
        let client = Client { principal };
        if let Some(will) = &will {
            let topic = String::from_utf8_lossy(&will.topic);
            if !self.may_publish(&client, &topic) {
                return Err(format!(
                    "the last-will topic `{topic}` is outside what the key may write"
                ));
            }
        }
        if let Some(principal) = &client.principal
            && !connect.client_id.is_empty()
        {
            connect.client_id = format!("{}:{}", principal.tenant, connect.client_id);
        }
        let packet = Packet::Connect(
            connect,
            properties,
            will,
            will_properties,
            Some(self.login.clone()),
        );
        let mut out = BytesMut::new();
        V5.write(packet, &mut out)
            .map_err(|e| format!("CONNECT could not be relayed: {e:?}"))?;
        Ok((client, out.freeze()))
    }

    /// A client may publish only what a device sends (`register`, `context`,
    /// `deregister`, `config/reported` of a Thing) and recommendation requests (they are
    /// stored), in its key's tenant, with a write key: not the topics the service
    /// publishes on (desired configurations, events, answers, replies).
    fn may_publish(&self, client: &Client, topic: &str) -> bool {
        match &client.principal {
            None => true,
            Some(p) => {
                p.may(Role::Write)
                    && self
                        .topics
                        .parse_request(topic)
                        .is_ok_and(|request| *request.tenant() == p.tenant)
            }
        }
    }

    fn may_subscribe(&self, client: &Client, filter: &str) -> bool {
        match &client.principal {
            None => true,
            Some(p) => self.topics.tenant_of(unshared(filter)) == Some(p.tenant.as_str()),
        }
    }

    /// A packet from the client, changed where it reaches outside the client's tenant.
    fn vet(&self, client: &Client, aliases: &mut HashMap<u16, Bytes>, packet: Packet) -> Packet {
        match packet {
            Packet::Publish(mut publish, mut properties) => {
                // The broker never sees an alias: the front sends every topic in full.
                if let Some(alias) = properties.as_mut().and_then(|p| p.topic_alias.take()) {
                    if publish.topic.is_empty() {
                        publish.topic = aliases.get(&alias).cloned().unwrap_or_default();
                    } else if aliases.len() < MAX_TOPIC_ALIASES || aliases.contains_key(&alias) {
                        aliases.insert(alias, publish.topic.clone());
                    }
                }
                let Some(principal) = &client.principal else {
                    return Packet::Publish(publish, properties);
                };
                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                if !self.may_publish(client, &topic) {
                    tracing::debug!(tenant = %principal.tenant, %topic, "publish outside the key's rights moved aside");
                    publish.topic = Bytes::from(format!(
                        "{}/{}/{topic}",
                        self.topics.denied_prefix(),
                        principal.tenant
                    ));
                }
                Packet::Publish(publish, properties)
            }
            Packet::Subscribe(mut subscribe, properties) => {
                let Some(principal) = &client.principal else {
                    return Packet::Subscribe(subscribe, properties);
                };
                for filter in &mut subscribe.filters {
                    // rumqttd keys shared groups by name alone: give each tenant its own.
                    if let Some(rest) = filter.path.strip_prefix("$share/") {
                        filter.path = format!("$share/{}.{rest}", principal.tenant);
                    }
                    if !self.may_subscribe(client, &filter.path) {
                        // Nothing is published under this level, so the filter matches nothing.
                        filter.path = format!(
                            "{}/{}/denied-subscription",
                            self.topics.prefix(),
                            principal.tenant
                        );
                    }
                }
                Packet::Subscribe(subscribe, properties)
            }
            other => other,
        }
    }
}

/// A filter without its `$share/{group}/` part.
fn unshared(filter: &str) -> &str {
    match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, f)| f),
        None => filter,
    }
}

/// Decodes one whole packet a client sent, in its protocol. Only the packets a client may
/// send after CONNECT are read (rumqttd's readers panic on others).
fn decode_from_client(v5: bool, frame: &Bytes, max: usize) -> Result<Packet, FrontError> {
    match frame.first().map(|b| b >> 4) {
        // PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT.
        Some(3..=8 | 10 | 12 | 14) => decode(v5, frame, max),
        Some(kind) => Err(FrontError::Malformed(format!(
            "a client may not send packets of type {kind} here"
        ))),
        None => Err(FrontError::Malformed("empty packet".into())),
    }
}

/// Decodes one whole packet in the client's protocol.
fn decode(v5: bool, frame: &Bytes, max: usize) -> Result<Packet, FrontError> {
    let mut copy = BytesMut::from(&frame[..]);
    let packet = if v5 {
        V5.read_mut(&mut copy, max)
    } else {
        V4.read_mut(&mut copy, max)
    };
    packet.map_err(|e| FrontError::Malformed(format!("{e:?}")))
}

/// Relays the broker's MQTT 5 packets to an MQTT 3.1.1 client: properties and reason
/// codes dropped, refusals mapped to their 3.1.1 codes. (Translated by hand: rumqttd's
/// own MQTT 5 reader only reads what clients send.)
async fn downgrade(
    broker: &mut (impl AsyncReadExt + Unpin),
    device: &mut (impl AsyncWriteExt + Unpin),
    max: usize,
) -> Result<(), FrontError> {
    let mut inbox = BytesMut::with_capacity(4096);
    let mut out = BytesMut::with_capacity(4096);
    loop {
        let frame = read_frame(broker, &mut inbox, max).await?;
        out.clear();
        if !downgrade_packet(&frame, &mut out)? {
            // A server DISCONNECT has no 3.1.1 form: the connection just ends.
            return Ok(());
        }
        device.write_all(&out).await?;
    }
}

/// Writes the MQTT 3.1.1 form of one MQTT 5 packet from the broker; `false` for a
/// DISCONNECT.
fn downgrade_packet(frame: &[u8], out: &mut BytesMut) -> Result<bool, FrontError> {
    let truncated = || FrontError::Malformed("truncated packet from the broker".into());
    let (header_len, _) = fixed_header(frame)?.ok_or_else(truncated)?;
    let first = frame[0];
    let body = &frame[header_len..];
    let mut packet = |content: &[u8]| {
        out.extend_from_slice(&[first]);
        put_varint(out, content.len());
        out.extend_from_slice(content);
    };
    // Skips a property block: its length, then the properties.
    let skip_properties = |rest: &[u8]| -> Result<usize, FrontError> {
        let (len, used) = read_varint(rest)?;
        Ok(used + len)
    };
    match first >> 4 {
        // CONNACK: session present, return code (0 accepted; any refusal → not authorized).
        2 => {
            let flags = *body.first().ok_or_else(truncated)?;
            let reason = *body.get(1).ok_or_else(truncated)?;
            packet(&[flags & 1, if reason == 0 { 0 } else { V4_NOT_AUTHORIZED }]);
        }
        // PUBLISH: topic, packet id when QoS > 0, properties (dropped), payload.
        3 => {
            let topic_len = body
                .get(..2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or_else(truncated)?;
            let id_len = if (first >> 1) & 3 > 0 { 2 } else { 0 };
            let head = body.get(..2 + topic_len + id_len).ok_or_else(truncated)?;
            let rest = &body[head.len()..];
            let payload = rest.get(skip_properties(rest)?..).ok_or_else(truncated)?;
            let mut content = Vec::with_capacity(head.len() + payload.len());
            content.extend_from_slice(head);
            content.extend_from_slice(payload);
            packet(&content);
        }
        // PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: the packet id only.
        4..=7 | 11 => packet(body.get(..2).ok_or_else(truncated)?),
        // SUBACK: packet id, properties (dropped), one code per filter.
        9 => {
            let id = body.get(..2).ok_or_else(truncated)?;
            let rest = &body[2..];
            let codes = rest.get(skip_properties(rest)?..).ok_or_else(truncated)?;
            let mut content = id.to_vec();
            content.extend(codes.iter().map(|&c| if c <= 2 { c } else { 0x80 }));
            packet(&content);
        }
        // PINGRESP.
        13 => packet(&[]),
        14 => return Ok(false),
        other => {
            return Err(FrontError::Malformed(format!(
                "unexpected packet type {other} from the broker"
            )));
        }
    }
    Ok(true)
}

fn put_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.extend_from_slice(&[byte]);
        if value == 0 {
            return;
        }
    }
}

/// Reads one whole MQTT packet (fixed header included).
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
    max: usize,
) -> Result<Bytes, FrontError> {
    loop {
        if let Some((header_len, remaining)) = fixed_header(buf)? {
            if remaining > max {
                return Err(FrontError::Malformed(format!(
                    "a packet of {remaining} bytes is over the {max}-byte limit"
                )));
            }
            if buf.len() >= header_len + remaining {
                return Ok(buf.split_to(header_len + remaining).freeze());
            }
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(FrontError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// The fixed header's length and the remaining length, once enough bytes are there.
fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, FrontError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    match read_varint(&buf[1..]) {
        Ok((remaining, used)) => Ok(Some((1 + used, remaining))),
        Err(FrontError::Malformed(m)) if m == "incomplete" => Ok(None),
        Err(e) => Err(e),
    }
}

/// An MQTT variable byte integer: its value and how many bytes it took.
fn read_varint(buf: &[u8]) -> Result<(usize, usize), FrontError> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 4 {
        Err(FrontError::Malformed(
            "remaining length over 4 bytes".into(),
        ))
    } else {
        Err(FrontError::Malformed("incomplete".into()))
    }
}

fn read_string(buf: &[u8]) -> Result<(&str, &[u8]), FrontError> {
    let len = buf
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or_else(|| FrontError::Malformed("truncated string".into()))?;
    let text = buf
        .get(2..2 + len)
        .ok_or_else(|| FrontError::Malformed("truncated string".into()))?;
    let text = std::str::from_utf8(text)
        .map_err(|_| FrontError::Malformed("topic is not UTF-8".into()))?;
    Ok((text, &buf[2 + len..]))
}

/// The protocol level byte of a CONNECT frame (after "MQTT").
fn protocol_level(frame: &[u8]) -> Result<u8, FrontError> {
    let (header_len, _) =
        fixed_header(frame)?.ok_or_else(|| FrontError::Malformed("truncated CONNECT".into()))?;
    let (_, rest) = read_string(&frame[header_len..])?;
    rest.first()
        .copied()
        .ok_or_else(|| FrontError::Malformed("truncated CONNECT".into()))
}

fn connack_refusal(v5: bool, code: u8) -> Vec<u8> {
    if v5 {
        // Session present 0, reason code, no properties.
        vec![0x20, 0x03, 0x00, code, 0x00]
    } else {
        vec![0x20, 0x02, 0x00, code]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{
        Filter, Publish, PublishProperties, QoS, RetainForwardRule, Subscribe,
    };

    fn varint(value: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_varint(&mut out, value);
        out.to_vec()
    }

    #[test]
    fn remaining_lengths_are_read_and_overlong_ones_refused() {
        for value in [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455] {
            let bytes = varint(value);
            assert_eq!(read_varint(&bytes).expect("varint"), (value, bytes.len()));
        }
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(matches!(fixed_header(&[0x30, 0x80]), Ok(None)));
    }

    fn front() -> (Front, Client) {
        let front = Front {
            topics: Topics::new("iotcane"),
            keys: None,
            max_packet_size: 1 << 20,
            internal_v5: SocketAddr::from(([127, 0, 0, 1], 1)),
            login: Login {
                username: String::new(),
                password: String::new(),
            },
        };
        let client = Client {
            principal: Some(Principal {
                key_id: "k".to_owned(),
                key_name: "k".to_owned(),
                tenant: "acme".parse().expect("tenant"),
                role: Role::Write,
            }),
        };
        (front, client)
    }

    /// Encodes `packet` as MQTT 3.1.1, decodes it as the front does, vets it, and
    /// re-encodes it as MQTT 5 for the broker.
    fn through(front: &Front, client: &Client, packet: Packet) -> Packet {
        let mut wire = BytesMut::new();
        V4.write(packet, &mut wire).expect("encode");
        let vetted = front.vet(
            client,
            &mut HashMap::new(),
            decode_from_client(false, &wire.freeze(), 1 << 20).expect("decode"),
        );
        let mut out = BytesMut::new();
        V5.write(vetted, &mut out).expect("encode v5");
        V5.read_mut(&mut out, 1 << 20).expect("decode v5")
    }

    #[test]
    fn publishes_outside_the_tenant_are_moved_aside_with_their_payload() {
        let (front, client) = front();
        let payload = r#"{"status":"online"}"#;
        let publish = Publish::new("iotcane/globex/things/x/context", payload, false);
        let Packet::Publish(moved, _) = through(&front, &client, Packet::Publish(publish, None))
        else {
            panic!("not a publish");
        };
        assert_eq!(
            moved.topic,
            "iotcane-denied/acme/iotcane/globex/things/x/context"
        );
        assert_eq!(moved.payload, payload.as_bytes());
        let own = Publish::new("iotcane/acme/things/x/context", payload, false);
        let Packet::Publish(kept, _) = through(&front, &client, Packet::Publish(own, None)) else {
            panic!("not a publish");
        };
        assert_eq!(kept.topic, "iotcane/acme/things/x/context");
    }

    /// The topic a client's PUBLISH reaches the broker on.
    fn published_on(front: &Front, client: &Client, topic: &str) -> String {
        let publish = Publish::new(topic.to_owned(), "{}".to_owned(), false);
        match through(front, client, Packet::Publish(publish, None)) {
            Packet::Publish(publish, _) => String::from_utf8_lossy(&publish.topic).into_owned(),
            other => panic!("not a publish: {other:?}"),
        }
    }

    #[test]
    fn recommendation_requests_need_a_write_key_of_the_tenant() {
        let (front, writer) = front();
        for topic in [
            "iotcane/acme/recommendations/request",
            "iotcane/acme/recommendations/request/req-1",
        ] {
            assert_eq!(published_on(&front, &writer, topic), topic);
        }
        for topic in [
            "iotcane/globex/recommendations/request",
            "iotcane/globex/recommendations/request/req-1",
            // What only the service publishes.
            "iotcane/acme/recommendations/reply/req-1",
            "iotcane/acme/replies/req-1",
            "iotcane/acme/events/recommendation/rec-1",
            // Not one topic level: not a request.
            "iotcane/acme/recommendations/request/a/b",
        ] {
            assert_eq!(
                published_on(&front, &writer, topic),
                format!("iotcane-denied/acme/{topic}"),
                "{topic}"
            );
        }
        let reader = Client {
            principal: writer.principal.clone().map(|p| Principal {
                role: Role::Read,
                ..p
            }),
        };
        let topic = "iotcane/acme/recommendations/request/req-1";
        assert_eq!(
            published_on(&front, &reader, topic),
            format!("iotcane-denied/acme/{topic}")
        );
    }

    #[test]
    fn clients_may_subscribe_to_their_own_replies() {
        let (front, client) = front();
        let filter = |path: &str| Filter {
            path: path.to_owned(),
            qos: QoS::AtLeastOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::OnEverySubscribe,
        };
        let subscribe = Subscribe {
            pkid: 4,
            filters: vec![
                filter("iotcane/acme/recommendations/reply/#"),
                filter("iotcane/acme/replies/#"),
                filter("iotcane/acme/events/recommendation/#"),
                filter("iotcane/globex/recommendations/reply/#"),
                filter("iotcane/globex/replies/#"),
            ],
        };
        let Packet::Subscribe(vetted, _) =
            through(&front, &client, Packet::Subscribe(subscribe, None))
        else {
            panic!("not a subscribe");
        };
        let paths: Vec<&str> = vetted.filters.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "iotcane/acme/recommendations/reply/#",
                "iotcane/acme/replies/#",
                "iotcane/acme/events/recommendation/#",
                "iotcane/acme/denied-subscription",
                "iotcane/acme/denied-subscription",
            ]
        );
    }

    #[test]
    fn mqtt5_publishes_and_acks_are_downgraded_for_311_clients() {
        // PUBLISH QoS 1, topic "a/b", id 9, a content-type property, payload "hi".
        let mut content = vec![0, 3, b'a', b'/', b'b', 0, 9];
        let property = [0x03, 0, 4, b'j', b's', b'o', b'n'];
        content.extend(varint(property.len()));
        content.extend(property);
        content.extend(b"hi");
        let mut frame = vec![0x32];
        frame.extend(varint(content.len()));
        frame.extend(&content);
        let mut out = BytesMut::new();
        assert!(downgrade_packet(&frame, &mut out).expect("publish"));
        assert_eq!(
            &out[..],
            &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 9, b'h', b'i']
        );
        // SUBACK with a reason string and codes QoS 1 and "not authorized".
        out.clear();
        let suback = [0x90, 8, 0, 5, 3, 0x1f, 0, 0, 1, 0x87];
        assert!(downgrade_packet(&suback, &mut out).expect("suback"));
        assert_eq!(&out[..], &[0x90, 4, 0, 5, 1, 0x80]);
        // CONNACK refused with a v5 reason → 3.1.1 "not authorized"; DISCONNECT ends.
        out.clear();
        assert!(downgrade_packet(&[0x20, 3, 0, 0x86, 0], &mut out).expect("connack"));
        assert_eq!(&out[..], &[0x20, 2, 0, V4_NOT_AUTHORIZED]);
        assert!(!downgrade_packet(&[0xe0, 0], &mut out).expect("disconnect"));
    }

    #[test]
    fn topic_aliases_are_resolved_before_the_check_and_never_reach_the_broker() {
        let (front, client) = front();
        let mut aliases = HashMap::new();
        let mut send = |topic: &str, alias: u16| {
            let properties = PublishProperties {
                payload_format_indicator: None,
                message_expiry_interval: None,
                topic_alias: Some(alias),
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
                subscription_identifiers: Vec::new(),
                content_type: None,
            };
            let mut wire = BytesMut::new();
            V5.write(
                Packet::Publish(
                    Publish::new(topic.to_owned(), "{}".to_owned(), false),
                    Some(properties),
                ),
                &mut wire,
            )
            .expect("encode");
            let packet = decode_from_client(true, &wire.freeze(), 1 << 20).expect("decode");
            match front.vet(&client, &mut aliases, packet) {
                Packet::Publish(publish, properties) => {
                    assert_eq!(properties.and_then(|p| p.topic_alias), None);
                    String::from_utf8_lossy(&publish.topic).into_owned()
                }
                other => panic!("not a publish: {other:?}"),
            }
        };
        assert_eq!(
            send("iotcane/acme/things/x/context", 1),
            "iotcane/acme/things/x/context"
        );
        assert_eq!(send("", 1), "iotcane/acme/things/x/context");
        send("iotcane/globex/things/x/context", 2);
        assert_eq!(
            send("", 2),
            "iotcane-denied/acme/iotcane/globex/things/x/context"
        );
        assert_eq!(send("", 9), "iotcane-denied/acme/", "an unknown alias");
    }

    #[test]
    fn packets_only_a_server_sends_are_refused_from_clients() {
        for first in [0x20u8, 0x90, 0xb0, 0xd0, 0xf0, 0x10] {
            let frame = Bytes::from(vec![first, 0]);
            assert!(
                decode_from_client(true, &frame, 1024).is_err(),
                "{first:#x}"
            );
            assert!(
                decode_from_client(false, &frame, 1024).is_err(),
                "{first:#x}"
            );
        }
    }

    #[test]
    fn subscriptions_outside_the_tenant_match_nothing() {
        let (front, client) = front();
        let filter = |path: &str| Filter {
            path: path.to_owned(),
            qos: QoS::AtLeastOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::OnEverySubscribe,
        };
        let subscribe = Subscribe {
            pkid: 3,
            filters: vec![
                filter("iotcane/acme/things/+/config/desired"),
                filter("#"),
                filter("iotcane/+/events/#"),
                filter("$share/g/iotcane/globex/#"),
                filter("$share/g/iotcane/acme/events/#"),
            ],
        };
        let Packet::Subscribe(vetted, _) =
            through(&front, &client, Packet::Subscribe(subscribe, None))
        else {
            panic!("not a subscribe");
        };
        let paths: Vec<&str> = vetted.filters.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "iotcane/acme/things/+/config/desired",
                "iotcane/acme/denied-subscription",
                "iotcane/acme/denied-subscription",
                "iotcane/acme/denied-subscription",
                "$share/acme.g/iotcane/acme/events/#",
            ]
        );
    }
}
