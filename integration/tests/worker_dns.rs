//! `berth-worker dns-proxy`: forwarding, the AAAA NXDOMAIN → NODATA repair for musl, and
//! robustness. Everything runs in namespaces the test makes: a client namespace (the proxy and
//! the getaddrinfo probes), an "upstream" namespace on TEST-NET-2 with the test's own DNS
//! server (see netns_common), never the host's resolvers.

mod netns_common;
mod worker_common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_integration::scaled;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use netns_common::*;
use worker_common::*;

const UP: &str = "198.51.100.53";
const MUTE: &str = "198.51.100.54";

/// Client namespace `c` (198.51.100.1) ↔ upstream namespace (198.51.100.53 answers,
/// 198.51.100.54 never does).
struct Lab {
    c: Netns,
    _up: Netns,
    server: DnsServer,
    mute: DnsServer,
}

impl Lab {
    fn new() -> Lab {
        let c = Netns::new("dnsc");
        let up = Netns::new("dnsup");
        link(&c, "198.51.100.1/24", &up, "198.51.100.53/24");
        run_sh(&format!("ip -n {} addr add {MUTE}/32 dev lo", up.name));
        let server = DnsServer::start(&up, &format!("{UP}:53"), false);
        let mute = DnsServer::start(&up, &format!("{MUTE}:53"), true);
        Lab {
            c,
            _up: up,
            server,
            mute,
        }
    }

    /// Start the proxy in the client namespace; returns once it is listening.
    fn proxy(&self, listen: &str, args: &[&str]) -> Proxy {
        let mut child = self
            .c
            .cmd(worker_bin())
            .args(["dns-proxy", "--listen", listen, "--log-level", "debug"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                l.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        if rx.recv_timeout(scaled(Duration::from_secs(10))).is_err() {
            let _ = child.kill();
            panic!("proxy did not start: {}", log.lock().unwrap());
        }
        Proxy {
            child,
            log,
            addr: dns_addr(listen),
        }
    }

    /// getaddrinfo(NAME) by the glibc or musl probe, with resolv.conf naming `ns`.
    fn gai(&self, musl: bool, ns: &str, name: &str) -> String {
        // The resolver's own wait, stretched under emulation (glibc caps it at 30s).
        let t = scaled(Duration::from_secs(2)).as_secs().min(30);
        self.c.set_resolv_conf(&format!(
            "nameserver {ns}\noptions timeout:{t} attempts:1\n"
        ));
        let probe = fixtures().join(if musl {
            "probes/berth-probe-musl"
        } else {
            "probes/berth-probe"
        });
        let o = self
            .c
            .cmd(&probe)
            .args(["getaddrinfo", name])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o).trim().to_string()
    }

    /// Raw reply bytes for a query sent from the client namespace.
    fn raw(&self, server: SocketAddr, m: &Message) -> Option<Vec<u8>> {
        let b = m.to_vec().unwrap();
        self.c.run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(scaled(Duration::from_secs(8))))
                .unwrap();
            s.send_to(&b, server).unwrap();
            let mut buf = [0u8; 65535];
            let n = s.recv(&mut buf).ok()?;
            Some(buf[..n].to_vec())
        })
    }

    fn ask(&self, server: SocketAddr, m: &Message) -> Message {
        Message::from_vec(&self.raw(server, m).expect("no reply")).unwrap()
    }
}

fn dns_addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::new(s.parse().unwrap(), 53))
}

struct Proxy {
    child: Child,
    log: Arc<Mutex<String>>,
    addr: SocketAddr,
}

impl Proxy {
    /// SIGTERM; the proxy must exit 0 and print its counters. Returns the whole log.
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        assert_eq!(st.code(), Some(0), "proxy exit status {st}; log:\n{log}");
        assert!(log.contains("stopped: queries="), "{log}");
        log
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stat(log: &str, key: &str) -> u64 {
    let l = log.lines().find(|l| l.contains("stopped:")).unwrap();
    l.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn musl_resolves_through_the_proxy_and_fails_without_its_rewrite() {
    let lab = Lab::new();
    // Directly against the broken upstream: glibc keeps the A answer, musl fails the name.
    assert_eq!(lab.gai(false, UP, "a.test"), "gai=OK addrs=198.51.100.10");
    assert!(lab.gai(true, UP, "a.test").starts_with("gai=EAI_NONAME"));

    let p = lab.proxy("127.0.0.1", &["--upstream", UP]);
    assert_eq!(
        lab.gai(true, "127.0.0.1", "a.test"),
        "gai=OK addrs=198.51.100.10"
    );
    assert_eq!(
        lab.gai(false, "127.0.0.1", "a.test"),
        "gai=OK addrs=198.51.100.10"
    );
    // Names with both families and names without any records are untouched.
    for musl in [true, false] {
        let dual = lab.gai(musl, "127.0.0.1", "dual.test");
        assert!(
            dual.contains("198.51.100.11") && dual.contains("2001:db8::11"),
            "{dual}"
        );
        assert!(lab
            .gai(musl, "127.0.0.1", "missing.test")
            .starts_with("gai=EAI_NONAME"));
    }
    let log = p.stop();
    assert!(
        log.contains("rewrote AAAA NXDOMAIN to NODATA for a.test."),
        "{log}"
    );
    assert!(stat(&log, "rewritten") >= 2, "{log}");

    // The rewrite turned off: the incident again, through the proxy.
    let p = lab.proxy("127.0.0.1", &["--upstream", UP, "--no-rewrite"]);
    assert_eq!(
        lab.gai(true, "127.0.0.1", "b.test"),
        format!("gai=EAI_NONAME code={}", -2)
    );
    assert_eq!(
        lab.gai(false, "127.0.0.1", "b.test"),
        "gai=OK addrs=198.51.100.10"
    );
    let log = p.stop();
    assert_eq!(stat(&log, "rewritten"), 0, "{log}");
}

#[test]
fn only_aaaa_nxdomain_of_names_with_a_records_is_rewritten() {
    let lab = Lab::new();
    let p = lab.proxy("127.0.0.1", &["--upstream", UP]);
    let up: SocketAddr = format!("{UP}:53").parse().unwrap();

    let r = lab.ask(p.addr, &query_msg(7, "a.test.", RecordType::AAAA, None));
    assert_eq!(r.id(), 7);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.answers().is_empty());
    assert_eq!(r.name_servers().len(), 1);
    assert_eq!(r.name_servers()[0].record_type(), RecordType::SOA);

    // Everything else passes through byte for byte: compare with the upstream's own reply.
    for (n, t, code) in [
        ("missing.test.", RecordType::AAAA, ResponseCode::NXDomain),
        ("missing.test.", RecordType::A, ResponseCode::NXDomain),
        ("nodata.test.", RecordType::AAAA, ResponseCode::NoError),
        ("dual.test.", RecordType::AAAA, ResponseCode::NoError),
        ("servfail.test.", RecordType::AAAA, ResponseCode::ServFail),
        ("refused.test.", RecordType::A, ResponseCode::Refused),
    ] {
        let q = query_msg(4242, n, t, None);
        let via = lab.raw(p.addr, &q).unwrap();
        let direct = lab.raw(up, &q).unwrap();
        assert_eq!(via, direct, "{n} {t}");
        assert_eq!(
            Message::from_vec(&via).unwrap().response_code(),
            code,
            "{n} {t}"
        );
    }
    let log = p.stop();
    assert_eq!(stat(&log, "rewritten"), 1, "{log}");
}

#[test]
fn truncated_replies_are_retried_over_tcp_and_edns_passes_through() {
    let lab = Lab::new();
    let p = lab.proxy("127.0.0.1", &["--upstream", UP]);
    // No EDNS: the upstream truncates at 512 bytes, the proxy retries over TCP, and since 40
    // records do not fit the client's 512 either, the client gets TC and asks over TCP.
    let r = lab.ask(p.addr, &query_msg(1, "big.test.", RecordType::A, None));
    assert!(r.truncated(), "{r:?}");
    assert!(lab.server.seen.tcp.load(Ordering::SeqCst) >= 1);
    let addr = p.addr;
    let r = lab
        .c
        .run(move || tcp_query(addr, &query_msg(2, "big.test.", RecordType::A, None)));
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 40);
    // With EDNS0 the client's payload size travels upstream, and all 40 fit in one datagram.
    let r = lab.ask(
        p.addr,
        &query_msg(3, "big.test.", RecordType::A, Some((4096, false))),
    );
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 40);
    // EDNS0 payload size and DO bit reach the upstream; its OPT record comes back.
    let r = lab.ask(
        p.addr,
        &query_msg(4, "edns.test.", RecordType::TXT, Some((1232, true))),
    );
    assert_eq!(*lab.server.seen.edns.lock().unwrap(), Some((1232, true)));
    assert!(r.extensions().is_some(), "{r:?}");
    let log = p.stop();
    assert!(stat(&log, "tcp_retries") >= 1, "{log}");
}

#[test]
fn a_silent_upstream_gives_servfail_after_the_timeout_and_the_next_upstream_answers() {
    let lab = Lab::new();
    let p = lab.proxy("127.0.0.1", &["--upstream", MUTE, "--timeout", "1s"]);
    let t = Instant::now();
    let r = lab.ask(p.addr, &query_msg(9, "a.test.", RecordType::A, None));
    let took = t.elapsed();
    assert_eq!(r.response_code(), ResponseCode::ServFail);
    assert_eq!(r.id(), 9);
    assert!(
        took >= Duration::from_secs(1) && took < scaled(Duration::from_secs(5)),
        "{took:?}"
    );
    assert!(lab.mute.seen.udp.load(Ordering::SeqCst) >= 1);
    // Still serving.
    let r = lab.ask(p.addr, &query_msg(10, "dual.test.", RecordType::A, None));
    assert_eq!(r.response_code(), ResponseCode::ServFail);
    let log = p.stop();
    assert_eq!(stat(&log, "servfail"), 2, "{log}");

    // Several upstreams: the silent one first, then the real one.
    // Each upstream gets the timeout: the real one must answer within it, which
    // under emulation (the kernel matrix) takes longer.
    let each = format!("{}ms", scaled(Duration::from_millis(300)).as_millis());
    let p = lab.proxy("127.0.0.1", &["--upstream", MUTE, UP, "--timeout", &each]);
    let r = lab.ask(p.addr, &query_msg(11, "a.test.", RecordType::A, None));
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(r.answers().len(), 1);
    p.stop();
}

#[test]
fn malformed_and_oversized_packets_are_dropped_counted_and_serving_goes_on() {
    let lab = Lab::new();
    let p = lab.proxy("127.0.0.1", &["--upstream", UP]);
    let addr = p.addr;
    lab.c.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(scaled(Duration::from_millis(300))))
            .unwrap();
        let mut buf = [0u8; 4096];
        // Garbage, a truncated header, a *response* sent as a query, a 5000-byte datagram.
        let mut resp = query_msg(5, "a.test.", RecordType::A, None);
        resp.set_message_type(hickory_proto::op::MessageType::Response);
        for pkt in [
            b"\xde\xad\xbe\xef garbage".to_vec(),
            vec![0x12],
            resp.to_vec().unwrap(),
            vec![0u8; 5000],
        ] {
            s.send_to(&pkt, addr).unwrap();
            assert!(s.recv(&mut buf).is_err(), "a reply to a bad packet");
        }
        // TCP: a length prefix far over the limit closes the connection.
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(&60000u16.to_be_bytes()).unwrap();
        c.set_read_timeout(Some(scaled(Duration::from_secs(5))))
            .unwrap();
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    });
    let r = lab.ask(p.addr, &query_msg(6, "a.test.", RecordType::A, None));
    assert_eq!(r.answers().len(), 1);
    let log = p.stop();
    assert_eq!(stat(&log, "malformed"), 3, "{log}");
    assert_eq!(stat(&log, "oversized"), 2, "{log}");
}

#[test]
fn a_thousand_concurrent_queries_are_all_answered() {
    let lab = Lab::new();
    // The upstream answers all 1000 in turn: under emulation (the kernel matrix)
    // the last ones wait longer than the default 2s for it.
    let each = format!("{}ms", scaled(Duration::from_secs(2)).as_millis());
    let p = lab.proxy("127.0.0.1", &["--upstream", UP, "--timeout", &each]);
    let addr = p.addr;
    let answered = lab.c.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let v: libc::c_int = 8 << 20;
        // SAFETY: valid fd, c_int option value.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &v as *const _ as *const libc::c_void,
                4,
            )
        };
        let names = ["a.test.", "dual.test.", "missing.test.", "nodata.test."];
        for i in 0..1000u16 {
            let t = if i % 2 == 0 {
                RecordType::A
            } else {
                RecordType::AAAA
            };
            let q = query_msg(i, names[i as usize % 4], t, None);
            s.send_to(&q.to_vec().unwrap(), addr).unwrap();
        }
        s.set_read_timeout(Some(scaled(Duration::from_secs(10))))
            .unwrap();
        let mut seen = vec![false; 1000];
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.recv(&mut buf) {
            let m = Message::from_vec(&buf[..n]).unwrap();
            assert_ne!(m.response_code(), ResponseCode::ServFail);
            seen[m.id() as usize] = true;
            if seen.iter().all(|x| *x) {
                break;
            }
        }
        seen.iter().filter(|x| **x).count()
    });
    assert_eq!(answered, 1000);
    let log = p.stop();
    assert_eq!(stat(&log, "answered"), 1000, "{log}");
}

#[test]
fn a_loopback_upstream_like_systemd_resolved_is_reached() {
    let lab = Lab::new();
    // The host's resolver on 127.0.0.53, as systemd-resolved: reachable by the proxy, never by
    // a task (its 127.0.0.53 is its own loopback).
    let local = DnsServer::start(&lab.c, "127.0.0.53:53", false);
    let p = lab.proxy("198.51.100.1", &["--upstream", "127.0.0.53"]);
    assert_eq!(
        lab.gai(true, "198.51.100.1", "a.test"),
        "gai=OK addrs=198.51.100.10"
    );
    assert!(local.seen.udp.load(Ordering::SeqCst) >= 2);
    p.stop();
}

#[test]
fn bad_dns_proxy_arguments_are_errors() {
    let env = Env::new();
    let o = env.worker(&["dns-proxy", "--listen", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--listen"), "{}", text(&o));
    let o = env.worker(&["dns-proxy", "--listen", "127.0.0.1:0", "--upstream", "x.y"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--upstream"), "{}", text(&o));
}
