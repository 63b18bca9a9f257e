//! The fixed parameters of the configuration model: per-protocol hop latencies, the
//! jurisdiction of each known cloud region, defaults for figures the knowledge leaves
//! out, and the weights of the soft terms. The README's "Configuration model" section
//! states every one of them; changing one here changes answers, so change both.

use iotcane_model::Protocol;

/// Months over which hardware (devices and edge nodes bought from the catalog) is
/// amortised in the cost criterion.
pub const AMORTISATION_MONTHS: f64 = 36.0;
/// The weight of the preference term (preferred vendors, `prefer` rules).
pub const PREFERENCE_WEIGHT: f64 = 0.1;
/// The weight of the case term (bindings reused from similar past cases).
pub const CASE_WEIGHT: f64 = 0.1;
/// Search nodes each relaxation probe of a conflict may visit (a probe only needs one
/// valid configuration, which the bound finds quickly when there is one).
pub const CONFLICT_PROBE_NODES: u64 = 200_000;
/// Availability of an edge node or network link whose description states none: not
/// modelled, so it does not lower the chain.
pub const UNSTATED_AVAILABILITY: f64 = 1.0;
/// The most units of one catalog edge type, or of one cloud offering, a binding may take.
pub const MAX_QUANTITY: f64 = 1_000.0;
/// A constraint is reported tight when its slack is under this fraction of its limit.
pub const TIGHT_SLACK: f64 = 0.1;

/// The one-way latency, in ms, of the hop from a device to its edge node over a protocol:
/// typical figures for the access technology (radio duty cycles and gateways for LPWANs,
/// polling cycles for field buses).
pub fn hop_latency_ms(protocol: Protocol) -> f64 {
    use Protocol as P;
    match protocol {
        P::Analog | P::I2c | P::Spi | P::Usb => 1.0,
        P::Ethernet | P::Canbus => 2.0,
        P::Serial | P::Wifi | P::Opcua => 10.0,
        P::Mqtt | P::Coap | P::Http | P::Amqp | P::Kafka | P::Websocket | P::Lwm2m => 10.0,
        P::Modbus | P::Rs485 | P::Ble | P::FiveG => 20.0,
        P::Zigbee | P::Thread | P::Matter => 30.0,
        P::Zwave | P::Bacnet => 50.0,
        P::Lte => 60.0,
        P::Ltem => 200.0,
        P::Lorawan => 1_500.0,
        P::Nbiot => 1_600.0,
        P::Sigfox => 2_000.0,
    }
}

/// The jurisdictions a `dataResidency` may start with.
pub const JURISDICTIONS: [&str; 17] = [
    "EU", "EEA", "DE", "FR", "NL", "IE", "BE", "SE", "GB", "CH", "US", "CA", "SG", "JP", "AU",
    "IN", "BR",
];

/// The jurisdiction a residency statement names: its leading code, such as `EU` in
/// "EU (GDPR health data)". `None` when it names none this model knows.
pub fn jurisdiction_of_residency(residency: &str) -> Option<&'static str> {
    let code: String = residency
        .trim()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_uppercase();
    JURISDICTIONS.into_iter().find(|j| *j == code)
}

/// The country of a known cloud region of AWS, Azure or Google Cloud.
fn region_country(region: &str) -> Option<&'static str> {
    Some(match region {
        "eu-central-1" | "europe-west3" | "germanywestcentral" | "europe-west10" => "DE",
        "eu-west-1" | "northeurope" | "europe-west1-ie" => "IE",
        "westeurope" | "europe-west4" => "NL",
        "europe-west1" => "BE",
        "eu-west-3" | "francecentral" | "europe-west9" => "FR",
        "eu-north-1" | "swedencentral" => "SE",
        "eu-south-1" | "italynorth" | "europe-west8" => "IT",
        "eu-south-2" | "spaincentral" | "europe-southwest1" => "ES",
        "europe-central2" | "polandcentral" => "PL",
        "europe-north1" | "finlandcentral" => "FI",
        "eu-west-2" | "uksouth" | "ukwest" | "europe-west2" => "GB",
        "eu-central-2" | "switzerlandnorth" | "europe-west6" => "CH",
        "us-east-1" | "us-east-2" | "us-west-1" | "us-west-2" | "eastus" | "eastus2" | "westus"
        | "westus2" | "westus3" | "centralus" | "northcentralus" | "southcentralus"
        | "us-central1" | "us-east1" | "us-east4" | "us-west1" | "us-west2" | "us-west4"
        | "us-south1" => "US",
        "ca-central-1" | "canadacentral" | "northamerica-northeast1" => "CA",
        "ap-southeast-1" | "southeastasia" | "asia-southeast1" => "SG",
        "ap-northeast-1" | "japaneast" | "asia-northeast1" => "JP",
        "ap-southeast-2" | "australiaeast" | "australia-southeast1" => "AU",
        "ap-south-1" | "centralindia" | "asia-south1" => "IN",
        "sa-east-1" | "brazilsouth" | "southamerica-east1" => "BR",
        _ => return None,
    })
}

const EU: [&str; 10] = ["DE", "IE", "NL", "BE", "FR", "SE", "IT", "ES", "PL", "FI"];

/// Whether data stored in `region` stays within `jurisdiction`: the region's country is
/// the jurisdiction, or (for `EU` and `EEA`) a member state. Unknown regions never do.
pub fn region_within(region: &str, jurisdiction: &str) -> bool {
    match region_country(region) {
        None => false,
        Some(country) => match jurisdiction {
            "EU" | "EEA" => EU.contains(&country),
            other => other == country,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residency_reads_the_leading_code() {
        assert_eq!(
            jurisdiction_of_residency("EU (GDPR health data)"),
            Some("EU")
        );
        assert_eq!(jurisdiction_of_residency("sg"), Some("SG"));
        assert_eq!(jurisdiction_of_residency("Mars"), None);
        assert!(region_within("eu-central-1", "EU"));
        assert!(region_within("westeurope", "NL"));
        assert!(!region_within("us-east-1", "EU"));
        assert!(!region_within("unknown-1", "US"));
    }
}
