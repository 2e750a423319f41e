//! The parts of `linux.resources` that `spec.rs` keeps as raw JSON
//! (`blockIO`, `network`), typed here, and runc's device-rule defaults.

use crate::spec::{DeviceRule, Resources, Spec};
use serde::{Deserialize, Serialize};

/// `linux.resources.blockIO`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockIo {
    #[serde(default)]
    pub weight: Option<u16>,
    #[serde(default)]
    pub leaf_weight: Option<u16>,
    #[serde(default)]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default)]
    pub throttle_read_bps_device: Vec<ThrottleDevice>,
    #[serde(default)]
    pub throttle_write_bps_device: Vec<ThrottleDevice>,
    #[serde(default, rename = "throttleReadIOPSDevice")]
    pub throttle_read_iops_device: Vec<ThrottleDevice>,
    #[serde(default, rename = "throttleWriteIOPSDevice")]
    pub throttle_write_iops_device: Vec<ThrottleDevice>,
}

impl BlockIo {
    /// Does it ask for anything? (An empty `blockIO: {}` needs no controller.)
    pub fn is_requested(&self) -> bool {
        self.weight.is_some()
            || self.leaf_weight.is_some()
            || !self.weight_device.is_empty()
            || !self.throttle_read_bps_device.is_empty()
            || !self.throttle_write_bps_device.is_empty()
            || !self.throttle_read_iops_device.is_empty()
            || !self.throttle_write_iops_device.is_empty()
    }

    /// The four throttle lists with their field names and the v1 file / v2
    /// `io.max` key each maps to.
    pub fn throttles(&self) -> [(&'static str, &[ThrottleDevice], &'static str, &'static str); 4] {
        [
            (
                "throttleReadBpsDevice",
                &self.throttle_read_bps_device,
                "blkio.throttle.read_bps_device",
                "rbps",
            ),
            (
                "throttleWriteBpsDevice",
                &self.throttle_write_bps_device,
                "blkio.throttle.write_bps_device",
                "wbps",
            ),
            (
                "throttleReadIOPSDevice",
                &self.throttle_read_iops_device,
                "blkio.throttle.read_iops_device",
                "riops",
            ),
            (
                "throttleWriteIOPSDevice",
                &self.throttle_write_iops_device,
                "blkio.throttle.write_iops_device",
                "wiops",
            ),
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    #[serde(default)]
    pub weight: Option<u16>,
    #[serde(default)]
    pub leaf_weight: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// `linux.resources.network` (net_cls / net_prio, cgroup v1 only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default, rename = "classID")]
    pub class_id: Option<u32>,
    #[serde(default)]
    pub priorities: Vec<InterfacePriority>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfacePriority {
    pub name: String,
    pub priority: u32,
}

fn rule(typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
    DeviceRule {
        allow: true,
        typ: Some(typ.into()),
        major,
        minor,
        access: Some(access.into()),
    }
}

/// The devices every container may use whatever the spec says, appended
/// after the spec's rules as runc's spec conversion does: mknod of any
/// device (use still needs a rule), /dev/null, zero, full, random, urandom,
/// tty, console, ptmx and the pty slaves.
pub fn default_device_rules() -> Vec<DeviceRule> {
    vec![
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"), // /dev/null
        rule("c", Some(1), Some(5), "rwm"), // /dev/zero
        rule("c", Some(1), Some(7), "rwm"), // /dev/full
        rule("c", Some(1), Some(8), "rwm"), // /dev/random
        rule("c", Some(1), Some(9), "rwm"), // /dev/urandom
        rule("c", Some(5), Some(0), "rwm"), // /dev/tty
        rule("c", Some(5), Some(1), "rwm"), // /dev/console
        rule("c", Some(5), Some(2), "rwm"), // /dev/ptmx
        rule("c", Some(136), None, "rwm"),  // /dev/pts/*
    ]
}

/// The resources to apply for `spec`, as runc computes them: the spec's
/// `linux.resources`, with the device list made "deny all; the spec's
/// rules; an allow for each `linux.devices` entry; the defaults". The
/// leading deny makes the result independent of the parent's rules.
pub fn effective_resources(spec: &Spec) -> Resources {
    let linux = spec.linux();
    let mut r = linux.resources.clone().unwrap_or_default();
    let mut devs = vec![DeviceRule {
        allow: false,
        typ: Some("a".into()),
        major: None,
        minor: None,
        access: Some("rwm".into()),
    }];
    devs.append(&mut r.devices);
    for d in &linux.devices {
        if matches!(d.typ.as_str(), "c" | "b" | "u") {
            let typ = if d.typ == "u" { "c" } else { d.typ.as_str() };
            devs.push(rule(typ, Some(d.major), Some(d.minor), "rwm"));
        }
    }
    devs.extend(default_device_rules());
    r.devices = devs;
    r
}
