//! The seed incident, end to end with the real runc: Concourse's seccomp
//! profile of 7.12.x (examples/seccomp/concourse-7.12.json: default EPERM,
//! clone3 not named) breaks every DNS lookup of a glibc >= 2.34 image under
//! runc — clone3 gets EPERM, glibc does not fall back to clone, curl's
//! resolver thread cannot start — while berth answers ENOSYS for the unnamed
//! clone3 and the same bundle works.
//!
//! The incident happened on Linux 5.10 workers; the kernel matrix (`make
//! test-kernels`, docs/kernels.md) runs this file there as well as on 6.x.

use std::path::Path;

use berth_integration::{workspace_dir, Bundle, Container, Runtime};
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";

/// A read-only bookworm (glibc 2.36) bundle that serves a file with busybox
/// httpd inside its own network namespace and fetches it with curl by a name
/// that only glibc's resolver (a thread) can answer, under the 7.12 profile.
fn incident_bundle() -> Bundle {
    let rootfs = berth_integration::fixtures_dir().join("rootfs/bookworm");
    assert!(
        rootfs.join("etc/berth-fixture").exists(),
        "bookworm fixture missing at {} (make fixtures)",
        rootfs.display()
    );
    let profile: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_dir().join("examples/seccomp/concourse-7.12.json"))
            .expect("reading examples/seccomp/concourse-7.12.json"),
    )
    .expect("concourse-7.12.json is JSON");
    let bundle = Bundle::busybox();
    let hosts = bundle.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost berth-test\n").expect("writing hosts");
    bundle
        .sh("busybox httpd -p 127.0.0.1:8080 -h /etc\n\
             curl -sS http://berth-test:8080/hostname; echo \"curl-exit=$?\"\n")
        .with(|c| {
            c["root"] = json!({ "path": rootfs, "readonly": true });
            c["process"]["terminal"] = false.into();
            c["linux"]["seccomp"] = profile;
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/etc/hosts", "type": "bind",
                "source": hosts, "options": ["rbind", "ro"]
            }));
        })
}

#[test]
fn concourse_7_12_profile_breaks_curl_under_runc_and_works_under_berth() {
    assert!(
        Path::new(RUNC).exists(),
        "{RUNC} missing (make deps installs runc)"
    );
    let hostname = std::fs::read_to_string(
        berth_integration::fixtures_dir().join("rootfs/bookworm/etc/hostname"),
    )
    .unwrap();

    let runc = Container::new(&Runtime::other(RUNC), incident_bundle(), "incident_runc");
    let out = runc.run();
    out.assert_code(0);
    assert!(out.stdout.contains("curl-exit=6"), "runc:\n{out}");
    assert!(
        out.stderr.contains("getaddrinfo() thread failed to start"),
        "runc: curl's error:\n{out}"
    );
    runc.finish();

    let berth = Container::new(&Runtime::new(), incident_bundle(), "incident_berth");
    let out = berth.run();
    out.assert_code(0);
    assert!(out.stdout.contains("curl-exit=0"), "berth:\n{out}");
    assert!(out.stdout.contains(hostname.trim()), "berth:\n{out}");
    berth.finish();
}
