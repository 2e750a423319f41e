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
use std::sync::Arc;
use std::time::Duration;

pub use berth_integration::testdns::{self, Seen};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

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

/// The test's upstream resolver ([`berth_integration::testdns`]) on `addr` inside `ns`.
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
            (
                UdpSocket::bind(addr).unwrap(),
                TcpListener::bind(addr).unwrap(),
            )
        });
        testdns::serve(udp, tcp, mute, seen.clone());
        DnsServer { addr, seen }
    }
}

// ------------------------------------------------------------------ test DNS client

/// A query message for `qname`/`qtype`, optionally with EDNS0 (payload size, DO bit).
pub fn query_msg(id: u16, qname: &str, qtype: RecordType, edns: Option<(u16, bool)>) -> Message {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(qname).unwrap(), qtype));
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
