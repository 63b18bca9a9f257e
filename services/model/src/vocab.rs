//! The RDF terms of the model (see `schema/iotcane.ttl`).

use oxrdf::NamedNodeRef;

macro_rules! terms {
    ($ns:literal; $($name:ident = $local:literal),+ $(,)?) => {
        $(pub const $name: NamedNodeRef<'static> = NamedNodeRef::new_unchecked(concat!($ns, $local));)+
    };
}

/// `https://w3id.org/iotcane/ontology#`
pub mod ic {
    use super::NamedNodeRef;
    pub const NS: &str = "https://w3id.org/iotcane/ontology#";
    terms!("https://w3id.org/iotcane/ontology#";
        DEVICE = "Device", EDGE_NODE = "EdgeNode", CLOUD_OFFERING = "CloudOffering",
        NETWORK_LINK = "NetworkLink", SOFTWARE_SERVICE = "SoftwareService", CASE = "Case",
        CONFIGURATION = "Configuration", BINDING = "Binding", QOS_REQUIREMENT = "QosRequirement",
        OUTCOME = "Outcome", LIVE_CONTEXT = "LiveContext", RULE = "Rule",
        TAG = "tag", PROTOCOL = "protocol", MAX_SAMPLING_RATE_HZ = "maxSamplingRateHz",
        POWER_SOURCE = "powerSource", POWER_W = "powerW", BATTERY_LIFE_DAYS = "batteryLifeDays",
        AVAILABILITY = "availability", SITE = "site", INSTANCE_OF = "instanceOf",
        LIVE = "liveContext", THING_DESCRIPTION = "thingDescription",
        DESIRED_CONFIG = "desiredConfig", REPORTED_CONFIG = "reportedConfig",
        CPU_CORES = "cpuCores", CPU_GHZ = "cpuGhz", MEMORY_MB = "memoryMb", STORAGE_GB = "storageGb",
        ACCELERATOR = "accelerator", SOUTHBOUND_PROTOCOL = "southboundProtocol",
        NORTHBOUND_PROTOCOL = "northboundProtocol", MAX_THROUGHPUT_MSGS = "maxThroughputMsgs",
        PROVIDER = "provider", REGION = "region", OFFERING_KIND = "offeringKind", VCPUS = "vcpus",
        MEMORY_GB = "memoryGb", THROUGHPUT_MSGS = "throughputMsgs", PRICE_PER_MONTH = "pricePerMonth",
        AVAILABILITY_SLA = "availabilitySla",
        FROM_ENDPOINT = "fromEndpoint", TO_ENDPOINT = "toEndpoint", LATENCY_MS = "latencyMs",
        BANDWIDTH_MBPS = "bandwidthMbps", JITTER_MS = "jitterMs", LINK_TECHNOLOGY = "linkTechnology",
        SERVICE_KIND = "serviceKind", REQUIRED_CPU_CORES = "requiredCpuCores",
        REQUIRED_MEMORY_MB = "requiredMemoryMb", REQUIRED_STORAGE_GB = "requiredStorageGb",
        DEPLOYABLE_ON = "deployableOn",
        DOMAIN = "domain", CONTEXT_DOCUMENT = "contextDocument", CONFIGURATION_PROP = "configuration",
        OUTCOME_PROP = "outcome", BINDING_PROP = "binding", REQUIREMENT = "requirement", ROLE = "role",
        RESOURCE = "resource", QUANTITY = "quantity", QOS_REQUIREMENT_PROP = "qosRequirement",
        METRIC = "metric", COMPARATOR = "comparator", VALUE = "value", UNIT = "unit",
        TOTAL_MONTHLY_COST = "totalMonthlyCost", TOTAL_LATENCY_MS = "totalLatencyMs",
        TOTAL_AVAILABILITY = "totalAvailability", TOTAL_ENERGY_W = "totalEnergyW",
        OBJECTIVE = "objective", OUTCOME_STATUS = "outcomeStatus", RATING = "rating", NOTES = "notes",
        MEASURED_LATENCY_MS = "measuredLatencyMs", MEASURED_MONTHLY_COST = "measuredMonthlyCost",
        MEASURED_AVAILABILITY = "measuredAvailability",
        RULE_CONDITION = "ruleCondition", RULE_ACTION = "ruleAction", RULE_TARGET = "ruleTarget",
        RULE_REASON = "ruleReason", REFINES = "refines", CORNERSTONE_CASE = "cornerstoneCase",
        STATUS = "status", BATTERY_PCT = "batteryPct", LOAD_PCT = "loadPct", OBSERVED_AT = "observedAt",
        PROPERTY_VALUE = "propertyValue", PROPERTY_NAME = "propertyName",
        VERSION = "version", CHANGE_SOURCE = "changeSource", CHANGED_BY = "changedBy",
    );
}

/// `http://www.w3.org/ns/sosa/`
pub mod sosa {
    use super::NamedNodeRef;
    terms!("http://www.w3.org/ns/sosa/";
        SENSOR = "Sensor", ACTUATOR = "Actuator", PLATFORM = "Platform",
        OBSERVES = "observes", ACTS_ON_PROPERTY = "actsOnProperty",
    );
}

/// `https://www.w3.org/2019/wot/td#`
pub mod td {
    use super::NamedNodeRef;
    terms!("https://www.w3.org/2019/wot/td#";
        HAS_PROPERTY_AFFORDANCE = "hasPropertyAffordance",
        HAS_ACTION_AFFORDANCE = "hasActionAffordance",
        HAS_EVENT_AFFORDANCE = "hasEventAffordance",
        NAME = "name", TITLE = "title", HAS_FORM = "hasForm",
        HAS_INTERACTION_AFFORDANCE = "hasInteractionAffordance",
        PROPERTY_AFFORDANCE = "PropertyAffordance", ACTION_AFFORDANCE = "ActionAffordance",
        EVENT_AFFORDANCE = "EventAffordance",
    );
}

/// `https://www.w3.org/2019/wot/hypermedia#`
pub mod hctl {
    use super::NamedNodeRef;
    terms!("https://www.w3.org/2019/wot/hypermedia#";
        HAS_TARGET = "hasTarget", FOR_CONTENT_TYPE = "forContentType",
    );
}

/// `http://www.w3.org/ns/prov#`
pub mod prov {
    use super::NamedNodeRef;
    terms!("http://www.w3.org/ns/prov#";
        GENERATED_AT_TIME = "generatedAtTime",
    );
}

/// `https://schema.org/`
pub mod schema {
    use super::NamedNodeRef;
    terms!("https://schema.org/";
        NAME = "name", MANUFACTURER = "manufacturer", MODEL = "model", PRICE = "price",
        PRICE_CURRENCY = "priceCurrency",
    );
}

/// `http://purl.org/dc/terms/`
pub mod dcterms {
    use super::NamedNodeRef;
    terms!("http://purl.org/dc/terms/";
        IDENTIFIER = "identifier", DESCRIPTION = "description", SOURCE = "source",
    );
}

/// `http://www.w3.org/2003/01/geo/wgs84_pos#`
pub mod geo {
    use super::NamedNodeRef;
    terms!("http://www.w3.org/2003/01/geo/wgs84_pos#";
        LOCATION = "location", LAT = "lat", LONG = "long", ALT = "alt",
    );
}

/// `rdf:JSON`, the datatype of JSON literals.
pub const RDF_JSON: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON");
