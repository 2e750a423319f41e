//! The parts of `linux.resources` that `spec.rs` keeps as raw JSON
//! (`blockIO`, `network`), typed here.

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
