//! `BFDProfile`: how fast single-hop BFD (RFC 5880/5881) declares a peer down, shared by the
//! `BGPPeer`s that name it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::SpecProblem;

/// Default receive and transmit interval in milliseconds (MetalLB's, so a converted profile
/// that left them unset behaves the same).
const DEFAULT_INTERVAL_MS: u32 = 300;
/// Default detect multiplier (MetalLB's).
const DEFAULT_MULTIPLIER: u8 = 3;
/// Interval bounds in milliseconds (MetalLB's and FRR's).
const MIN_INTERVAL_MS: u32 = 10;
const MAX_INTERVAL_MS: u32 = 60_000;

/// Desired state of a `BFDProfile`.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    singular = "bfdprofile",
    category = "ferrolb",
    status = "BFDProfileStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "BFD timers for the BGP sessions of the BGPPeers that name this profile.",
    printcolumn(name = "Receive ms", type_ = "integer", json_path = ".spec.receiveInterval"),
    printcolumn(name = "Transmit ms", type_ = "integer", json_path = ".spec.transmitInterval"),
    printcolumn(name = "Multiplier", type_ = "integer", json_path = ".spec.detectMultiplier"),
    printcolumn(name = "Passive", type_ = "boolean", json_path = ".spec.passiveMode"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// The slowest rate, in milliseconds, at which this node wants to receive control packets
    /// (10 to 60000). Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60_000))]
    pub receive_interval: Option<u32>,

    /// The fastest rate, in milliseconds, at which this node sends control packets (10 to
    /// 60000). Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60_000))]
    pub transmit_interval: Option<u32>,

    /// Control packets missed in a row before the session is declared down (2 to 255). Default
    /// 3: with 300 ms intervals a dead peer is detected in about 0.9 s, with 100 ms in 0.3 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u8>,

    /// Wait for the peer to send the first control packet instead of starting the session.
    #[serde(default)]
    pub passive_mode: bool,
}

/// Observed state of a `BFDProfile`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileStatus {
    /// `ferrolb.io/InvalidSpec` when the spec cannot be used; the message lists every problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A `BFDProfile` spec with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBfdProfile {
    pub receive_interval: Duration,
    pub transmit_interval: Duration,
    pub detect_multiplier: u8,
    pub passive_mode: bool,
}

impl ValidBfdProfile {
    /// How long the peer may stay silent before the session is declared down, when it sends
    /// as fast as this node allows.
    pub fn detection_time(&self) -> Duration {
        self.receive_interval * u32::from(self.detect_multiplier)
    }
}

impl BFDProfileSpec {
    /// Checks every field; returns the effective profile, or every problem found.
    pub fn validate(&self) -> Result<ValidBfdProfile, Vec<SpecProblem>> {
        let mut out = Vec::new();
        let mut interval = |field: &str, v: Option<u32>| {
            let ms = v.unwrap_or(DEFAULT_INTERVAL_MS);
            if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) {
                out.push(SpecProblem::new(field, format!("{ms} ms is outside 10 to 60000 ms")));
            }
            Duration::from_millis(u64::from(ms))
        };
        let receive_interval = interval("spec.receiveInterval", self.receive_interval);
        let transmit_interval = interval("spec.transmitInterval", self.transmit_interval);
        let detect_multiplier = self.detect_multiplier.unwrap_or(DEFAULT_MULTIPLIER);
        if detect_multiplier < 2 {
            out.push(SpecProblem::new(
                "spec.detectMultiplier",
                format!("{detect_multiplier} is below 2: one lost packet would take the session down"),
            ));
        }
        if !out.is_empty() {
            return Err(out);
        }
        Ok(ValidBfdProfile {
            receive_interval,
            transmit_interval,
            detect_multiplier,
            passive_mode: self.passive_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn defaults_are_metallbs() {
        let p = BFDProfileSpec::default().validate().unwrap();
        assert_eq!(p.receive_interval, Duration::from_millis(300));
        assert_eq!(p.transmit_interval, Duration::from_millis(300));
        assert_eq!(p.detect_multiplier, 3);
        assert_eq!(p.detection_time(), Duration::from_millis(900));
        assert!(!p.passive_mode);
    }

    #[test]
    fn every_problem_is_reported() {
        let bad = BFDProfileSpec {
            receive_interval: Some(5),
            transmit_interval: Some(70_000),
            detect_multiplier: Some(1),
            passive_mode: true,
        };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["spec.receiveInterval", "spec.transmitInterval", "spec.detectMultiplier"]);
    }

    proptest! {
        /// Valid exactly when every value is in its documented range.
        #[test]
        fn valid_iff_in_range(rx in 0u32..70_000, tx in 0u32..70_000, mult in any::<u8>()) {
            let s = BFDProfileSpec {
                receive_interval: Some(rx),
                transmit_interval: Some(tx),
                detect_multiplier: Some(mult),
                passive_mode: false,
            };
            let in_range = (10..=60_000).contains(&rx) && (10..=60_000).contains(&tx) && mult >= 2;
            prop_assert_eq!(s.validate().is_ok(), in_range);
        }
    }
}
