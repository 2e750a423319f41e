//! Network namespaces, veth links and a tiny authoritative DNS server for the DNS proxy and
//! task network tests.
//!
//! Every packet these tests send stays inside namespaces the test creates: "the internet" is a
//! namespace holding TEST-NET-2 addresses (198.51.100.0/24, RFC 5737), the upstream resolver
//! is [`DnsServer`] running in its own namespace, and nothing touches the host's resolvers,
//! routes or firewall.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub fn run_sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn sh_out(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rand_suffix() -> String {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte buffer we own.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 3, 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A named network namespace (`ip netns add`), removed on drop with its /etc/netns files.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("bt-{tag}-{}", rand_suffix());
        run_sh(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ));
        Netns { name }
    }

    /// `ip netns exec NAME` reads `/etc/netns/NAME/resolv.conf` over /etc/resolv.conf.
    pub fn set_resolv_conf(&self, content: &str) {
        let d = format!("/etc/netns/{}", self.name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(format!("{d}/resolv.conf"), content).unwrap();
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    /// Run `f` on a thread that has joined this namespace: sockets it creates live here.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let p = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&p);
            f()
        })
        .join()
        .unwrap()
    }

    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        let p = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&p);
            f()
        });
    }
}

fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: setns on this thread only, with an fd we own.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// A veth pair between two namespaces, with addresses (CIDR) on both ends.
pub fn link(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    let (ia, ib) = (format!("v{}", rand_suffix()), format!("v{}", rand_suffix()));
    run_sh(&format!(
        "ip link add {ia} netns {} type veth peer name {ib} netns {} && \
         ip -n {} addr add {a_addr} dev {ia} && ip -n {} link set {ia} up && \
         ip -n {} addr add {b_addr} dev {ib} && ip -n {} link set {ib} up",
        a.name, b.name, a.name, a.name, b.name, b.name
    ));
}

// ------------------------------------------------------------------ test DNS server

/// What the test server has seen.
#[derive(Default)]
pub struct Seen {
    pub udp: AtomicUsize,
    pub tcp: AtomicUsize,
    /// EDNS payload size and DO bit of the last query for `edns.test.`.
    pub edns: Mutex<Option<(u16, bool)>>,
    pub stop: AtomicBool,
}

/// The test's upstream resolver, serving a zone `test.` shaped like the incident:
///
/// | name | A | AAAA |
/// |---|---|---|
/// | `a.test`, `b.test` | 198.51.100.10 | **NXDOMAIN** (the broken template) |
/// | `dual.test` | 198.51.100.11 | 2001:db8::11 |
/// | `nodata.test` | 198.51.100.12 | NODATA (NOERROR + SOA), correct |
/// | `big.test` | 40 records: TC over UDP without room, full over TCP | NXDOMAIN |
/// | `edns.test` | TXT: what EDNS the query carried (echoes EDNS back) | |
/// | `servfail.test` / `refused.test` | SERVFAIL / REFUSED | |
/// | anything else | NXDOMAIN | NXDOMAIN |
///
/// `mute` servers read queries and never answer.
pub struct DnsServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl DnsServer {
    pub fn start(ns: &Netns, addr: &str, mute: bool) -> DnsServer {
        let addr: SocketAddr = addr.parse().unwrap();
        let seen = Arc::new(Seen::default());
        let (udp, tcp) = ns.run(move || {
            let u = UdpSocket::bind(addr).unwrap();
            let v: libc::c_int = 8 << 20;
            // SAFETY: valid fd, c_int option value.
            unsafe {
                libc::setsockopt(
                    u.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    &v as *const _ as *const libc::c_void,
                    4,
                )
            };
            (u, TcpListener::bind(addr).unwrap())
        });
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                s.udp.fetch_add(1, Ordering::SeqCst);
                if mute {
                    continue;
                }
                if let Some(r) = answer(&buf[..n], false, &s) {
                    let _ = udp.send_to(&r, peer);
                }
            }
        });
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in tcp.incoming() {
                let Ok(mut c) = c else { continue };
                let s = s.clone();
                std::thread::spawn(move || loop {
                    let mut l = [0u8; 2];
                    if c.read_exact(&mut l).is_err() {
                        return;
                    }
                    let mut q = vec![0u8; u16::from_be_bytes(l) as usize];
                    if c.read_exact(&mut q).is_err() {
                        return;
                    }
                    s.tcp.fetch_add(1, Ordering::SeqCst);
                    if mute {
                        continue;
                    }
                    let Some(r) = answer(&q, true, &s) else {
                        return;
                    };
                    let mut out = (r.len() as u16).to_be_bytes().to_vec();
                    out.extend(r);
                    if c.write_all(&out).is_err() {
                        return;
                    }
                });
            }
        });
        DnsServer { addr, seen }
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn soa() -> Record {
    Record::from_rdata(
        name("test."),
        60,
        RData::SOA(SOA::new(
            name("ns.test."),
            name("admin.test."),
            1,
            3600,
            600,
            86400,
            60,
        )),
    )
}

fn answer(pkt: &[u8], tcp: bool, seen: &Seen) -> Option<Vec<u8>> {
    let q = Message::from_vec(pkt).ok()?;
    let query = q.queries().first()?.clone();
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(q.recursion_desired())
        .add_query(query.clone());
    if let Some(e) = q.extensions() {
        let mut back = Edns::new();
        back.set_max_payload(1232);
        back.set_dnssec_ok(e.flags().dnssec_ok);
        m.set_edns(back);
    }
    let n = query.name().to_lowercase().to_ascii();
    let qt = query.query_type();
    let a = |ip: [u8; 4]| {
        Record::from_rdata(
            query.name().clone(),
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    };
    match (n.as_str(), qt) {
        ("a.test." | "b.test.", RecordType::A) => {
            m.add_answer(a([198, 51, 100, 10]));
        }
        ("dual.test.", RecordType::A) => {
            m.add_answer(a([198, 51, 100, 11]));
        }
        ("dual.test.", RecordType::AAAA) => {
            m.add_answer(Record::from_rdata(
                query.name().clone(),
                60,
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
            ));
        }
        ("nodata.test.", RecordType::A) => {
            m.add_answer(a([198, 51, 100, 12]));
        }
        ("nodata.test.", _) => {
            m.add_name_server(soa());
        }
        ("big.test.", RecordType::A) => {
            for i in 0..40u8 {
                m.add_answer(a([198, 51, 100, 100 + i]));
            }
            let limit = q.max_payload() as usize;
            let full = m.to_vec().ok()?;
            if !tcp && full.len() > limit {
                return m.truncate().to_vec().ok();
            }
            return Some(full);
        }
        ("edns.test.", RecordType::TXT) => {
            let e = q
                .extensions()
                .as_ref()
                .map(|e| (e.max_payload(), e.flags().dnssec_ok));
            *seen.edns.lock().unwrap() = e;
            m.add_answer(Record::from_rdata(
                query.name().clone(),
                60,
                RData::TXT(TXT::new(vec![format!("{e:?}")])),
            ));
        }
        ("servfail.test.", _) => {
            m.set_response_code(ResponseCode::ServFail);
        }
        ("refused.test.", _) => {
            m.set_response_code(ResponseCode::Refused);
        }
        _ => {
            m.set_response_code(ResponseCode::NXDomain);
            m.add_name_server(soa());
        }
    }
    m.to_vec().ok()
}

// ------------------------------------------------------------------ test DNS client

/// A query message for `qname`/`qtype`, optionally with EDNS0 (payload size, DO bit).
pub fn query_msg(id: u16, qname: &str, qtype: RecordType, edns: Option<(u16, bool)>) -> Message {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name(qname), qtype));
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

/// One UDP query from a socket in the calling thread's namespace.
pub fn udp_query(server: SocketAddr, m: &Message, timeout: Duration) -> Option<Message> {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 65535];
    let n = s.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

/// One TCP query.
pub fn tcp_query(server: SocketAddr, m: &Message) -> Message {
    let mut c = TcpStream::connect(server).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let b = m.to_vec().unwrap();
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend(b);
    c.write_all(&out).unwrap();
    let mut l = [0u8; 2];
    c.read_exact(&mut l).unwrap();
    let mut r = vec![0u8; u16::from_be_bytes(l) as usize];
    c.read_exact(&mut r).unwrap();
    Message::from_vec(&r).unwrap()
}
