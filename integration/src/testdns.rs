//! The test's DNS server: a zone `test.` shaped like the musl incident (an upstream that
//! answers AAAA with NXDOMAIN for names that have A records), used by the DNS proxy tests
//! (`tests/netns_common`) and by `make demo` (the `berth-test-dns` binary).
//!
//! | name | A | AAAA |
//! |---|---|---|
//! | `a.test`, `b.test` | 198.51.100.10 | **NXDOMAIN** (the broken template) |
//! | `dual.test` | 198.51.100.11 | 2001:db8::11 |
//! | `nodata.test` | 198.51.100.12 | NODATA (NOERROR + SOA), correct |
//! | `big.test` | 40 records: TC over UDP without room, full over TCP | NXDOMAIN |
//! | `edns.test` | TXT: what EDNS the query carried (echoes EDNS back) | |
//! | `servfail.test` / `refused.test` | SERVFAIL / REFUSED | |
//! | anything else | NXDOMAIN | NXDOMAIN |

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What the test server has seen.
#[derive(Default)]
pub struct Seen {
    pub udp: AtomicUsize,
    pub tcp: AtomicUsize,
    /// EDNS payload size and DO bit of the last query for `edns.test.`.
    pub edns: Mutex<Option<(u16, bool)>>,
    pub stop: AtomicBool,
}

/// Serve `udp` and `tcp` on background threads (`mute`: read queries, never answer).
pub fn serve(udp: UdpSocket, tcp: TcpListener, mute: bool, seen: Arc<Seen>) {
    let v: libc::c_int = 8 << 20;
    // SAFETY: valid fd, c_int option value: room for a burst of queries.
    unsafe {
        libc::setsockopt(
            udp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &v as *const _ as *const libc::c_void,
            4,
        )
    };
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
    std::thread::spawn(move || {
        for c in tcp.incoming() {
            let Ok(mut c) = c else { continue };
            let s = seen.clone();
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

/// The reply to one query (None: drop it).
pub fn answer(pkt: &[u8], tcp: bool, seen: &Seen) -> Option<Vec<u8>> {
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
