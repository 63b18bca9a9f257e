//! The closed value sets of the model. Each is a string in JSON and a string literal in RDF.

use std::fmt;
use std::str::FromStr;

/// Declares a closed string enum with its wire spelling, parsing, display and serde.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The accepted spellings, for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown value {other:?}, expected one of: {}", Self::expected())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// Radio, field-bus, transport and application protocols, one closed set for every hop.
    Protocol {
        Ble = "ble", Zigbee = "zigbee", Zwave = "zwave", Thread = "thread", Matter = "matter",
        Lorawan = "lorawan", Sigfox = "sigfox", Nbiot = "nbiot", Ltem = "ltem", Lte = "lte",
        FiveG = "5g", Wifi = "wifi", Ethernet = "ethernet", Modbus = "modbus", Opcua = "opcua",
        Bacnet = "bacnet", Canbus = "canbus", Rs485 = "rs485", Serial = "serial", Usb = "usb",
        Analog = "analog", I2c = "i2c", Spi = "spi", Mqtt = "mqtt", Coap = "coap", Http = "http",
        Amqp = "amqp", Kafka = "kafka", Websocket = "websocket", Lwm2m = "lwm2m",
    }
);

string_enum!(PowerSource {
    Battery = "battery", Mains = "mains", Poe = "poe", Solar = "solar",
    Harvesting = "harvesting", Usb = "usb",
});

string_enum!(OfferingKind {
    Vm = "vm", StreamProcessing = "streamProcessing", ObjectStorage = "objectStorage",
    Database = "database", ManagedMqtt = "managedMqtt", Serverless = "serverless",
    TimeSeriesDatabase = "timeSeriesDatabase",
});

string_enum!(ServiceKind {
    Stream = "stream", Batch = "batch", Storage = "storage", Analytics = "analytics",
    Inference = "inference", Gateway = "gateway", Dashboard = "dashboard",
});

string_enum!(DeployTarget { Edge = "edge", Cloud = "cloud" });

string_enum!(BindingRole {
    Device = "device", Edge = "edge", Cloud = "cloud", Service = "service", Link = "link",
});

string_enum!(Metric {
    Latency = "latency", Availability = "availability", MonthlyCost = "monthlyCost",
    Energy = "energy", Throughput = "throughput", SamplingRate = "samplingRate",
});

string_enum!(Comparator { Lt = "lt", Le = "le", Eq = "eq", Ge = "ge", Gt = "gt" });

// The conclusion of a refinement rule: exclude or prefer the candidates it targets, or
// (in a refinement) allow them again, withdrawing the parent rule's conclusion.
string_enum!(RuleAction { Exclude = "exclude", Prefer = "prefer", Allow = "allow" });

string_enum!(OutcomeStatus { Success = "success", Partial = "partial", Failure = "failure" });

string_enum!(AffordanceKind { Property = "property", Action = "action", Event = "event" });

string_enum!(DeviceStatus { Online = "online", Offline = "offline", Unknown = "unknown" });

impl Protocol {
    /// The protocol a URI scheme in a Thing Description form speaks.
    pub fn from_uri_scheme(scheme: &str) -> Option<Self> {
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Some(Self::Http),
            "mqtt" | "mqtts" => Some(Self::Mqtt),
            "coap" | "coaps" | "coap+tcp" | "coaps+tcp" => Some(Self::Coap),
            "ws" | "wss" => Some(Self::Websocket),
            "modbus+tcp" | "modbus+rtu" | "modbus" => Some(Self::Modbus),
            "opc.tcp" => Some(Self::Opcua),
            "amqp" | "amqps" => Some(Self::Amqp),
            "kafka" => Some(Self::Kafka),
            "bacnet" => Some(Self::Bacnet),
            "zigbee" => Some(Self::Zigbee),
            "ble" | "gatt" => Some(Self::Ble),
            _ => None,
        }
    }
}
