//! `berth-dns-bench SERVER N CONCURRENCY`: query latency and throughput of a DNS server, for
//! bench/run.sh (section `network`): N sequential `A a.test.` queries over UDP (latency
//! p50/p99), then N queries with CONCURRENCY in flight (queries per second). Prints one line:
//! `p50_us=… p99_us=… qps=… lost=…`. A benchmark tool, not a test.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

fn query(id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii("a.test.").expect("static name"),
            RecordType::A,
        ));
    m.to_vec().expect("encodable")
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 3 {
        eprintln!("usage: berth-dns-bench SERVER:PORT N CONCURRENCY");
        std::process::exit(2);
    }
    let server: SocketAddr = a[0].parse().expect("SERVER:PORT");
    let n: usize = a[1].parse().expect("N");
    let conc: usize = a[2].parse().expect("CONCURRENCY");
    let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
    s.connect(server).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 4096];
    let mut lat = Vec::with_capacity(n);
    let mut lost = 0;
    for i in 0..n {
        let t = Instant::now();
        s.send(&query(i as u16)).unwrap();
        match s.recv(&mut buf) {
            Ok(_) => lat.push(t.elapsed().as_micros() as u64),
            Err(_) => lost += 1,
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    // Throughput: keep CONCURRENCY queries in flight.
    let t = Instant::now();
    let (mut sent, mut got) = (0usize, 0usize);
    while sent < n.min(conc) {
        s.send(&query(sent as u16)).unwrap();
        sent += 1;
    }
    while got < n {
        match s.recv(&mut buf) {
            Ok(_) => {
                got += 1;
                if sent < n {
                    s.send(&query(sent as u16)).unwrap();
                    sent += 1;
                }
            }
            Err(_) => {
                lost += n - got;
                break;
            }
        }
    }
    let qps = got as f64 / t.elapsed().as_secs_f64();
    println!(
        "p50_us={} p99_us={} qps={:.0} lost={lost}",
        pct(0.50),
        pct(0.99),
        qps
    );
}
