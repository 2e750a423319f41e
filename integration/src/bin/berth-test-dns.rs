//! `berth-test-dns --listen ADDR…`: the tests' DNS server (see `berth_integration::testdns`)
//! as a program, for `make demo`: an upstream that answers AAAA with NXDOMAIN for names that
//! have A records, as the CoreDNS template in the musl incident did. Runs until killed.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use berth_integration::testdns;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addrs: Vec<SocketAddr> = match args.first().map(String::as_str) {
        Some("--listen") if args.len() > 1 => args[1..]
            .iter()
            .map(|a| {
                a.parse()
                    .unwrap_or_else(|_| usage(&format!("bad address {a:?}")))
            })
            .collect(),
        _ => usage("missing --listen"),
    };
    for a in addrs {
        let udp = UdpSocket::bind(a).unwrap_or_else(|e| usage(&format!("{a}: {e}")));
        let tcp = TcpListener::bind(a).unwrap_or_else(|e| usage(&format!("{a}: {e}")));
        testdns::serve(udp, tcp, false, Arc::new(testdns::Seen::default()));
        eprintln!("berth-test-dns: serving zone test. on {a} (AAAA of a.test: NXDOMAIN)");
    }
    loop {
        std::thread::park();
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("berth-test-dns: {msg}\nusage: berth-test-dns --listen IP:PORT…");
    std::process::exit(2);
}
