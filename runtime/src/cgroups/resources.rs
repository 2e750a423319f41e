//! Where the typed `linux.resources.blockIO` ([`BlockIo`], defined with the
//! other config types in `spec.rs`) goes in the cgroup files.

pub use crate::spec::{BlockIo, InterfacePriority, Network, ThrottleDevice, WeightDevice};

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
