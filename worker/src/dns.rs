//! The DNS proxy tasks resolve through: a forwarder that repairs AAAA NXDOMAIN for musl.
//!
//! Why it exists. A task's `/etc/resolv.conf` cannot name the host's loopback resolvers
//! (systemd-resolved's 127.0.0.53, Docker's 127.0.0.11): inside the task's network namespace
//! 127.0.0.53 is the task's own loopback. So the proxy listens on the bridge gateway, where
//! tasks can reach it, and forwards to whatever the host resolves with, loopback included.
//!
//! The rewrite. Some upstreams answer every AAAA query with NXDOMAIN (a CoreDNS `template`
//! that meant "no IPv6 here"). NXDOMAIN means the *name* does not exist, with no records of
//! any type (RFC 8020, "NXDOMAIN: There Really Is Nothing Underneath"). glibc's
//! `getaddrinfo(AF_UNSPEC)` keeps the A answer anyway; musl's takes the NXDOMAIN at its word
//! and fails the whole name with EAI_NONAME, so every Alpine task breaks. The correct answer
//! for a name that has A records but no AAAA is NODATA: NOERROR, an empty answer section and
//! the zone's SOA in the authority section (RFC 2308 §2.2). The proxy rewrites an AAAA
//! NXDOMAIN to that, and only when an A query for the same name really returns A records
//! (checked upstream, briefly cached); a genuine NXDOMAIN, a NODATA, SERVFAIL and REFUSED go
//! through byte for byte. `--no-rewrite` turns it off; each rewrite is logged at debug level.
//!
//! Forwarding. Queries go out on a small pool of connected UDP sockets per upstream
//! ([`UpSocks`]), each under a fresh random id that is mapped back to the client's when the
//! reply (matched on id and question) comes in; upstreams are tried in turn until one answers
//! within the timeout. A client's UDP query takes the fast path, as dnsmasq's forwarder does:
//! no task and no timer of its own, just an entry in the socket's table of queries in flight
//! ([`Inflight`]); the socket's reader sends the reply straight back to the client, and one
//! sweeper resends or moves on the few that time out. Only a reply that needs more (a rewrite,
//! a TCP retry, a truncation for the client) gets a task. A truncated UDP reply is retried over TCP; if the full answer does not
//! fit the client's UDP size (512, or its EDNS0 payload size), the
//! client gets a truncated reply and retries over TCP to the proxy. EDNS0 options travel in the
//! forwarded bytes untouched. When no upstream answers, the client gets SERVFAIL (Concourse's
//! proxy sends nothing at all in that case, so its clients wait out their own timeouts).
//! Unparsable and oversized packets are dropped and counted.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The largest query accepted. Real queries are a few dozen bytes (a name is at most 255);
/// anything bigger is garbage or an attack, and is dropped.
pub const MAX_QUERY: usize = 4096;
/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long "this name has A records" (or has not) is remembered.
const A_CACHE_MAX: Duration = Duration::from_secs(30);
const A_CACHE_NEGATIVE: Duration = Duration::from_secs(5);
/// How often the sweeper looks for fast-path queries to resend or give up on, while any are in
/// flight (it sleeps otherwise). The timeouts it enforces are this much late at worst.
const SWEEP_TICK: Duration = Duration::from_millis(50);

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstream resolvers, tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub timeout: Duration,
    /// Rewrite AAAA NXDOMAIN to NODATA for names that have A records.
    pub rewrite: bool,
    /// Log every rewrite (and every failed forward) to stderr.
    pub debug: bool,
}

/// What the proxy has done, for the shutdown log line and the tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub queries: AtomicU64,
    pub answered: AtomicU64,
    pub rewritten: AtomicU64,
    pub servfail: AtomicU64,
    pub malformed: AtomicU64,
    pub oversized: AtomicU64,
    pub tcp_retries: AtomicU64,
}

impl Stats {
    /// `queries=N answered=N rewritten=N …`, the line printed at shutdown.
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "queries={} answered={} rewritten={} servfail={} malformed={} oversized={} tcp_retries={}",
            g(&self.queries),
            g(&self.answered),
            g(&self.rewritten),
            g(&self.servfail),
            g(&self.malformed),
            g(&self.oversized),
            g(&self.tcp_retries)
        )
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// The proxy's shared state.
pub struct Proxy {
    cfg: Config,
    pub stats: Stats,
    /// Per upstream, its shared sockets (opened on first use).
    pool: Vec<Mutex<Option<Arc<UpSocks>>>>,
    /// lower-cased name → (has A records, valid until).
    a_cache: Mutex<HashMap<String, (bool, Instant)>>,
    /// Wakes the sweeper when a fast-path query goes out.
    sweeper: tokio::sync::Notify,
    /// Ourselves, for the socket readers (which must not keep the proxy alive).
    me: Weak<Proxy>,
}

/// Bound sockets for one listen address.
pub struct Listener {
    pub addr: SocketAddr,
    udp: UdpSocket,
    tcp: TcpListener,
}

/// Bind UDP and TCP on `addr`. `reuse_port` lets several workers share one address (each
/// `berth-worker run` serves its own task, all on the bridge gateway).
pub fn bind(addr: SocketAddr, reuse_port: bool) -> Result<Listener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let dom = Domain::for_address(addr);
    let mk = |ty: Type, proto: Protocol| -> Result<Socket> {
        let s = Socket::new(dom, ty, Some(proto))?;
        s.set_reuse_address(true)?;
        if reuse_port {
            s.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let ctx = || format!("dns proxy: listening on {addr}");
    let u = mk(Type::DGRAM, Protocol::UDP).with_context(ctx)?;
    // A burst of queries (a build starting many lookups) must not overflow the socket's queue:
    // ask for 4 MiB, beyond rmem_max when we may (root).
    if u.set_recv_buffer_size_force(4 << 20).is_err() {
        let _ = u.set_recv_buffer_size(4 << 20);
    }
    u.bind(&addr.into()).with_context(ctx)?;
    let t = mk(Type::STREAM, Protocol::TCP).with_context(ctx)?;
    t.bind(&addr.into()).with_context(ctx)?;
    t.listen(1024).with_context(ctx)?;
    let udp = UdpSocket::from_std(std::net::UdpSocket::from(u)).with_context(ctx)?;
    let tcp = TcpListener::from_std(std::net::TcpListener::from(t)).with_context(ctx)?;
    let addr = udp.local_addr()?;
    Ok(Listener { addr, udp, tcp })
}

trait SetForce {
    fn set_recv_buffer_size_force(&self, n: usize) -> std::io::Result<()>;
}
impl SetForce for socket2::Socket {
    fn set_recv_buffer_size_force(&self, n: usize) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let v = n as libc::c_int;
        // SAFETY: a valid fd we own, and a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                self.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

impl Proxy {
    pub fn new(cfg: Config) -> Result<Arc<Proxy>> {
        if cfg.upstreams.is_empty() {
            bail!("dns proxy: no upstream resolver (pass --upstream ADDR, or have a nameserver in /etc/resolv.conf)");
        }
        Ok(Arc::new_cyclic(|me| Proxy {
            pool: cfg.upstreams.iter().map(|_| Mutex::new(None)).collect(),
            cfg,
            stats: Stats::default(),
            a_cache: Mutex::new(HashMap::new()),
            sweeper: tokio::sync::Notify::new(),
            me: me.clone(),
        }))
    }

    /// Serve the listeners until `shutdown` completes.
    pub async fn serve(
        self: &Arc<Self>,
        listeners: Vec<Listener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().sweep());
        for l in listeners {
            let udp = Arc::new(l.udp);
            tasks.spawn(self.clone().udp_loop(udp));
            tasks.spawn(self.clone().tcp_loop(l.tcp));
        }
        shutdown.await;
        tasks.abort_all();
    }

    async fn udp_loop(self: Arc<Self>, sock: Arc<UdpSocket>) {
        // One byte more than we accept, to tell an oversized datagram from a full one.
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, peer) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                // ECONNREFUSED and friends from an earlier send: nothing to do with this read.
                Err(_) => continue,
            };
            if n > MAX_QUERY {
                bump(&self.stats.oversized);
                continue;
            }
            let pkt = &buf[..n];
            match self.vet(pkt) {
                Ok(req) => {
                    // (upstream, deadline, resend and wait are set by ask_from)
                    let unset = Instant::now();
                    let q = Inflight {
                        listener: sock.clone(),
                        peer,
                        req,
                        pkt: pkt.to_vec(),
                        upstream: 0,
                        deadline: unset,
                        resend: unset,
                        wait: RETRANSMIT,
                    };
                    self.ask_from(0, q);
                }
                Err(Some(reply)) => send_to_client(&sock, peer, reply),
                Err(None) => {}
            }
        }
    }

    async fn tcp_loop(self: Arc<Self>, l: TcpListener) {
        loop {
            let Ok((conn, _)) = l.accept().await else {
                // EMFILE and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(self.clone().tcp_conn(conn));
        }
    }

    async fn tcp_conn(self: Arc<Self>, mut c: TcpStream) {
        loop {
            let len = match tokio::time::timeout(TCP_IDLE, c.read_u16()).await {
                Ok(Ok(l)) => l as usize,
                _ => return,
            };
            if len > MAX_QUERY {
                bump(&self.stats.oversized);
                return;
            }
            let mut pkt = vec![0u8; len];
            if tokio::time::timeout(TCP_IDLE, c.read_exact(&mut pkt))
                .await
                .map_or(true, |r| r.is_err())
            {
                return;
            }
            let Some(reply) = self.handle(&pkt, true).await else {
                return;
            };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            out.extend_from_slice(&reply);
            if c.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    /// One client query (wire bytes) → the reply to send, or None to drop it. The TCP path;
    /// UDP queries take the fast path (`ask_from`) and end up in [`Proxy::finish`] only when
    /// their reply needs more than a new id.
    pub async fn handle(&self, pkt: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let req = match self.vet(pkt) {
            Ok(req) => req,
            Err(reply) => return reply,
        };
        let fwd = self.forward(&req, pkt, tcp, 0).await;
        self.finish(&req, fwd, tcp).await
    }

    /// Parse and check a client's query: Ok(the query) to forward it, Err(a reply to send
    /// instead, or None to drop the packet).
    fn vet(&self, pkt: &[u8]) -> Result<Message, Option<Vec<u8>>> {
        let req = match Message::from_vec(pkt) {
            Ok(m) if m.message_type() == MessageType::Query => m,
            _ => {
                bump(&self.stats.malformed);
                return Err(None);
            }
        };
        bump(&self.stats.queries);
        if req.queries().len() != 1 || req.op_code() != OpCode::Query {
            // Nothing we could match a reply against; tell the client rather than forward.
            let code = if req.op_code() == OpCode::Query {
                ResponseCode::FormErr
            } else {
                ResponseCode::NotImp
            };
            return Err(error_reply(&req, code));
        }
        Ok(req)
    }

    /// SERVFAIL for a query no upstream answered.
    fn servfail(&self, req: &Message) -> Option<Vec<u8>> {
        bump(&self.stats.servfail);
        if self.cfg.debug {
            eprintln!(
                "berth-worker dns-proxy: debug: no upstream answered {} {}: SERVFAIL",
                req.queries()[0].name(),
                req.queries()[0].query_type()
            );
        }
        error_reply(req, ResponseCode::ServFail)
    }

    /// An upstream's reply (None: no upstream answered) → the reply for the client.
    async fn finish(
        &self,
        req: &Message,
        fwd: Option<(Vec<u8>, Message)>,
        tcp: bool,
    ) -> Option<Vec<u8>> {
        let mut reply = match fwd {
            Some((bytes, msg)) => self.repair(req, bytes, msg).await,
            None => return self.servfail(req),
        };
        bump(&self.stats.answered);
        if !tcp && reply.len() > req.max_payload() as usize {
            // The client's UDP limit: send the header and question with TC set; it retries
            // over TCP (RFC 1035 §4.2.1, RFC 6891 §6.2.5).
            let mut full = Message::from_vec(&reply).ok()?.truncate();
            full.set_id(req.id());
            return full.to_vec().ok();
        }
        // Upstream saw our id (see `UpSock`); the client gets its own back. The id is the
        // header's first 16 bits (RFC 1035 §4.1.1); nothing else in the reply changes.
        reply[..2].copy_from_slice(&req.id().to_be_bytes());
        Some(reply)
    }

    /// Ask each upstream in turn, from upstream `from` on; the first reply wins (its bytes, as
    /// upstream sent them, and parsed). None when none answered in time.
    async fn forward(
        &self,
        req: &Message,
        pkt: &[u8],
        tcp: bool,
        from: usize,
    ) -> Option<(Vec<u8>, Message)> {
        for (i, up) in self.cfg.upstreams.iter().enumerate().skip(from) {
            let r =
                tokio::time::timeout(self.cfg.timeout, self.exchange(i, *up, req, pkt, tcp)).await;
            match r {
                Ok(Ok(reply)) => return Some(reply),
                Ok(Err(e)) if self.cfg.debug => {
                    eprintln!("berth-worker dns-proxy: debug: upstream {up}: {e:#}")
                }
                Err(_) if self.cfg.debug => {
                    eprintln!("berth-worker dns-proxy: debug: upstream {up}: timed out")
                }
                _ => {}
            }
        }
        None
    }

    async fn exchange(
        &self,
        i: usize,
        up: SocketAddr,
        req: &Message,
        pkt: &[u8],
        tcp: bool,
    ) -> Result<(Vec<u8>, Message)> {
        if tcp {
            return exchange_tcp(up, req, pkt).await;
        }
        let (bytes, msg) = self.upstream_socks(i)?.exchange(req, pkt).await?;
        if msg.truncated() {
            bump(&self.stats.tcp_retries);
            return exchange_tcp(up, req, pkt).await;
        }
        Ok((bytes, msg))
    }

    /// The socket pool of upstream `i`, opened on first use (and again after a failure).
    fn upstream_socks(&self, i: usize) -> Result<Arc<UpSocks>> {
        let mut slot = self.pool[i].lock().expect("pool lock");
        if let Some(p) = &*slot {
            return Ok(p.clone());
        }
        let p = Arc::new(UpSocks::open(self.cfg.upstreams[i], i, self.me.clone())?);
        *slot = Some(p.clone());
        Ok(p)
    }

    /// The fast path: send a client's UDP query to upstream `from` (or the next one whose
    /// socket opens) and return; the socket's reader answers the client. With no upstream
    /// left, the client gets SERVFAIL.
    fn ask_from(&self, from: usize, mut q: Inflight) {
        for i in from..self.cfg.upstreams.len() {
            let socks = match self.upstream_socks(i) {
                Ok(s) => s,
                Err(e) => {
                    if self.cfg.debug {
                        let up = self.cfg.upstreams[i];
                        eprintln!("berth-worker dns-proxy: debug: upstream {up}: {e:#}");
                    }
                    continue;
                }
            };
            let now = Instant::now();
            q.upstream = i;
            q.deadline = now + self.cfg.timeout;
            q.wait = RETRANSMIT;
            q.resend = now + RETRANSMIT;
            let s = socks.pick();
            let query = q.req.queries()[0].clone();
            let mut out = q.pkt.clone();
            s.register(query, To::Client(Box::new(q)), &mut out);
            s.send_now(out);
            self.sweeper.notify_one();
            return;
        }
        if let Some(reply) = self.servfail(&q.req) {
            send_to_client(&q.listener, q.peer, reply);
        }
    }

    /// An upstream's reply to a fast-path query. Most need only the client's id back; a
    /// truncated reply (retried over TCP), an AAAA NXDOMAIN to check for the rewrite and a
    /// reply larger than the client takes go through [`Proxy::finish`] in a task.
    fn answer(&self, q: Inflight, mut bytes: Vec<u8>, msg: Message) {
        let qt = q.req.queries()[0].query_type();
        let slow = msg.truncated()
            || bytes.len() > q.req.max_payload() as usize
            || (self.cfg.rewrite
                && qt == RecordType::AAAA
                && msg.response_code() == ResponseCode::NXDomain);
        if !slow {
            self.note_a(&q.req, &msg);
            bump(&self.stats.answered);
            bytes[..2].copy_from_slice(&q.req.id().to_be_bytes());
            send_to_client(&q.listener, q.peer, bytes);
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let i = q.upstream;
            let fwd = if msg.truncated() {
                bump(&me.stats.tcp_retries);
                let up = me.cfg.upstreams[i];
                match tokio::time::timeout(me.cfg.timeout, exchange_tcp(up, &q.req, &q.pkt)).await {
                    Ok(Ok(r)) => Some(r),
                    _ => me.forward(&q.req, &q.pkt, false, i + 1).await,
                }
            } else {
                Some((bytes, msg))
            };
            if let Some(reply) = me.finish(&q.req, fwd, false).await {
                send_to_client(&q.listener, q.peer, reply);
            }
        });
    }

    /// While fast-path queries are in flight, every [`SWEEP_TICK`]: resend the unanswered
    /// (400 ms, then doubling, as a stub resolver does) and move the ones past their
    /// upstream's timeout on to the next upstream (or SERVFAIL).
    async fn sweep(self: Arc<Self>) {
        loop {
            self.sweeper.notified().await;
            while self.sweep_once() {
                tokio::time::sleep(SWEEP_TICK).await;
            }
        }
    }

    /// One sweep; false when no fast-path query is in flight.
    fn sweep_once(&self) -> bool {
        let now = Instant::now();
        let mut busy = false;
        let mut expired = Vec::new();
        for slot in &self.pool {
            let Some(socks) = slot.lock().expect("pool lock").clone() else {
                continue;
            };
            for s in &socks.socks {
                let mut p = s.pending.lock().expect("pending lock");
                let mut gone = Vec::new();
                for (id, w) in p.iter_mut() {
                    let To::Client(q) = &mut w.to else { continue };
                    busy = true;
                    if now >= q.deadline {
                        gone.push(*id);
                    } else if now >= q.resend {
                        let mut out = q.pkt.clone();
                        out[..2].copy_from_slice(&id.to_be_bytes());
                        s.send_now(out);
                        q.wait *= 2;
                        q.resend = now + q.wait;
                    }
                }
                for id in gone {
                    if let Some(Waiter {
                        to: To::Client(q), ..
                    }) = p.remove(&id)
                    {
                        expired.push(*q);
                    }
                }
            }
        }
        for q in expired {
            if self.cfg.debug {
                let up = self.cfg.upstreams[q.upstream];
                eprintln!("berth-worker dns-proxy: debug: upstream {up}: timed out");
            }
            self.ask_from(q.upstream + 1, q);
        }
        busy
    }

    /// The A answer a client asked for anyway (musl sends A and AAAA together) tells the next
    /// AAAA check's result for free.
    fn note_a(&self, req: &Message, msg: &Message) {
        let q = &req.queries()[0];
        if q.query_class() == DNSClass::IN
            && q.query_type() == RecordType::A
            && msg.response_code() == ResponseCode::NoError
        {
            if let Some(ttl) = a_ttl(msg) {
                self.remember(q.name(), true, ttl);
            }
        }
    }

    /// The AAAA NXDOMAIN → NODATA rewrite; every other reply is returned unchanged.
    async fn repair(&self, req: &Message, reply: Vec<u8>, mut msg: Message) -> Vec<u8> {
        let q = &req.queries()[0];
        if q.query_class() != DNSClass::IN {
            return reply;
        }
        self.note_a(req, &msg);
        if !self.cfg.rewrite
            || q.query_type() != RecordType::AAAA
            || msg.response_code() != ResponseCode::NXDomain
        {
            return reply;
        }
        if !self.has_a(q.name()).await {
            return reply; // a real NXDOMAIN
        }
        msg.set_response_code(ResponseCode::NoError);
        msg.answers_mut().clear();
        msg.name_servers_mut()
            .retain(|r| r.record_type() == RecordType::SOA);
        if msg.name_servers().is_empty() {
            msg.add_name_server(synthetic_soa(q.name()));
        }
        match msg.to_vec() {
            Ok(v) => {
                bump(&self.stats.rewritten);
                if self.cfg.debug {
                    eprintln!(
                        "berth-worker dns-proxy: debug: rewrote AAAA NXDOMAIN to NODATA for {} (the name has A records; RFC 8020)",
                        q.name()
                    );
                }
                v
            }
            Err(_) => reply,
        }
    }

    fn remember(&self, name: &Name, has: bool, ttl: Duration) {
        let key = name.to_lowercase().to_ascii();
        let mut c = self.a_cache.lock().expect("a_cache lock");
        if c.len() > 10_000 {
            let now = Instant::now();
            c.retain(|_, (_, t)| *t > now);
        }
        c.insert(key, (has, Instant::now() + ttl));
    }

    /// Does `name` have A records? Asks the upstreams (cached briefly).
    async fn has_a(&self, name: &Name) -> bool {
        let key = name.to_lowercase().to_ascii();
        if let Some((has, until)) = self.a_cache.lock().expect("a_cache lock").get(&key) {
            if *until > Instant::now() {
                return *has;
            }
        }
        let mut m = Message::new();
        m.set_id(rand_id())
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), RecordType::A));
        let Ok(pkt) = m.to_vec() else { return false };
        let ans = self
            .forward(&m, &pkt, false, 0)
            .await
            .map(|(_, r)| r)
            .filter(|r| r.response_code() == ResponseCode::NoError)
            .and_then(|r| a_ttl(&r));
        match ans {
            Some(ttl) => {
                self.remember(name, true, ttl);
                true
            }
            None => {
                self.remember(name, false, A_CACHE_NEGATIVE);
                false
            }
        }
    }
}

/// The smallest TTL of the A records in an answer (capped), or None when there are none.
fn a_ttl(m: &Message) -> Option<Duration> {
    m.answers()
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .map(|r| Duration::from_secs(r.ttl().into()))
        .min()
        .map(|t| t.min(A_CACHE_MAX))
}

/// An SOA for a NODATA whose upstream NXDOMAIN carried none: owned by the name itself, with a
/// short negative-caching TTL, so a resolver behind us caches the "no AAAA" only briefly.
fn synthetic_soa(name: &Name) -> Record {
    let soa = SOA::new(
        name.clone(),
        Name::from_ascii("hostmaster.invalid.").expect("static name"),
        1,
        3600,
        600,
        86400,
        30,
    );
    Record::from_rdata(name.clone(), 30, RData::SOA(soa))
}

fn error_reply(req: &Message, code: ResponseCode) -> Option<Vec<u8>> {
    let mut m = Message::error_msg(req.id(), req.op_code(), code);
    m.set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .add_queries(req.queries().iter().cloned());
    m.to_vec().ok()
}

/// A random query id, from the kernel's CSPRNG (an off-path spoofer must guess it), drawn 128
/// at a time: one getrandom per query cost as much as the rest of a fast-path forward.
fn rand_id() -> u16 {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<([u8; 256], usize)> = const { RefCell::new(([0; 256], 256)) };
    }
    POOL.with(|p| {
        let (buf, used) = &mut *p.borrow_mut();
        if *used + 2 > buf.len() {
            // SAFETY: getrandom writes at most len bytes into the buffer we own. Up to 256
            // bytes it returns them all, uninterrupted by signals (getrandom(2)).
            unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
            *used = 0;
        }
        let id = u16::from_ne_bytes([buf[*used], buf[*used + 1]]);
        *used += 2;
        id
    })
}

/// Send a reply to a UDP client without waiting; only a full send queue costs a task.
fn send_to_client(listener: &Arc<UdpSocket>, peer: SocketAddr, reply: Vec<u8>) {
    if let Err(e) = listener.try_send_to(&reply, peer) {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            let l = listener.clone();
            tokio::spawn(async move {
                let _ = l.send_to(&reply, peer).await;
            });
        }
    }
}

/// How many connected sockets each upstream gets. Queries are spread over them, so a reply
/// must match a random 16-bit id *and* one of several random source ports.
const SOCKS_PER_UPSTREAM: usize = 8;
/// When an unanswered UDP query is first sent again.
const RETRANSMIT: Duration = Duration::from_millis(400);

/// The UDP sockets to one upstream, shared by every query (no socket per query: creating,
/// connecting and closing one cost more than the whole forward). Each query gets a fresh
/// random id on the socket it is sent from; the reply is matched on that id and its question,
/// then given back to the client under the client's own id. The sockets are connected, so
/// only the upstream's address can answer on them.
struct UpSocks {
    socks: Vec<Arc<UpSock>>,
    next: AtomicUsize,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

struct UpSock {
    sock: UdpSocket,
    /// id on the wire → who waits for that reply.
    pending: Mutex<HashMap<u16, Waiter>>,
}

struct Waiter {
    /// Which exchange this is: an id is reused once its reply is in.
    seq: u64,
    query: Query,
    to: To,
}

/// Where an upstream's reply goes.
enum To {
    /// A task awaiting it (TCP clients, the rewrite's A check).
    Task(tokio::sync::oneshot::Sender<(Vec<u8>, Message)>),
    /// Straight back to a UDP client (the fast path).
    Client(Box<Inflight>),
}

/// A client's UDP query on the fast path, waiting in its upstream socket's table.
struct Inflight {
    /// The socket the query came in on, to answer from.
    listener: Arc<UdpSocket>,
    peer: SocketAddr,
    req: Message,
    /// The query as the client sent it (its own id).
    pkt: Vec<u8>,
    /// Which upstream has it, until when, and when it is sent again.
    upstream: usize,
    deadline: Instant,
    resend: Instant,
    wait: Duration,
}

impl UpSock {
    /// Send without waiting when the socket is known writable; otherwise (a socket the reactor
    /// has not reported on yet, whose try_send refuses, or a full queue) in a task.
    fn send_now(self: &Arc<Self>, out: Vec<u8>) {
        if let Err(e) = self.sock.try_send(&out) {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = me.sock.send(&out).await;
                });
            }
        }
    }

    /// Enter a query under a fresh id (written into `out`'s header); its (id, sequence number).
    fn register(&self, query: Query, to: To, out: &mut [u8]) -> (u16, u64) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut p = self.pending.lock().expect("pending lock");
        let mut id = rand_id();
        while p.contains_key(&id) {
            id = rand_id();
        }
        p.insert(id, Waiter { seq, query, to });
        out[..2].copy_from_slice(&id.to_be_bytes()); // the header's id (RFC 1035 §4.1.1)
        (id, seq)
    }
}

impl UpSocks {
    /// The next socket, round robin.
    fn pick(&self) -> &Arc<UpSock> {
        &self.socks[self.next.fetch_add(1, Ordering::Relaxed) % self.socks.len()]
    }

    fn open(up: SocketAddr, index: usize, proxy: Weak<Proxy>) -> Result<UpSocks> {
        use socket2::{Domain, Protocol, Socket, Type};
        let mut socks = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..SOCKS_PER_UPSTREAM {
            let s = Socket::new(Domain::for_address(up), Type::DGRAM, Some(Protocol::UDP))
                .and_then(|s| {
                    // A burst of replies (1000 queries at once) must not overflow the queue.
                    if s.set_recv_buffer_size_force(4 << 20).is_err() {
                        let _ = s.set_recv_buffer_size(4 << 20);
                    }
                    s.set_nonblocking(true)?;
                    // Connecting binds a kernel-chosen random port.
                    s.connect(&up.into())?;
                    Ok(s)
                })
                .with_context(|| format!("opening a UDP socket to upstream {up}"))?;
            let s = Arc::new(UpSock {
                sock: UdpSocket::from_std(s.into())?,
                pending: Mutex::new(HashMap::new()),
            });
            readers.push(tokio::spawn(s.clone().read_replies(index, proxy.clone())));
            socks.push(s);
        }
        Ok(UpSocks {
            socks,
            next: AtomicUsize::new(0),
            readers,
        })
    }

    /// Send `pkt` (the query `req`) under a fresh id and wait for the matching reply. The
    /// caller's timeout bounds the wait; the pending entry goes away with the future.
    async fn exchange(&self, req: &Message, pkt: &[u8]) -> Result<(Vec<u8>, Message)> {
        let s = self.pick();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut out = pkt.to_vec();
        let (id, seq) = s.register(req.queries()[0].clone(), To::Task(tx), &mut out);
        let _forget = Forget { s, id, seq };
        s.sock.send(&out).await?;
        // UDP may drop the query or the reply (a full socket queue in a burst): send it again,
        // as a stub resolver would, after 400 ms, then at doubling intervals, until an answer
        // comes or the caller's timeout ends the exchange.
        let (mut rx, mut wait) = (rx, RETRANSMIT);
        loop {
            match tokio::time::timeout(wait, &mut rx).await {
                Ok(r) => {
                    return r
                        .map_err(|_| anyhow!("the upstream refused the query (port unreachable)"))
                }
                Err(_) => {
                    s.sock.send(&out).await?;
                    wait *= 2;
                }
            }
        }
    }
}

impl Drop for UpSocks {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Removes a query's pending entry when its exchange ends (answered, timed out, cancelled).
struct Forget<'a> {
    s: &'a UpSock,
    id: u16,
    seq: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut p = self.s.pending.lock().expect("pending lock");
        if p.get(&self.id).is_some_and(|w| w.seq == self.seq) {
            p.remove(&self.id);
        }
    }
}

impl UpSock {
    /// Hand every reply to the query waiting for it; drop strays (late, spoofed, mismatched).
    /// `index` is this socket's upstream among the proxy's.
    async fn read_replies(self: Arc<Self>, index: usize, proxy: Weak<Proxy>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match self.sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    // ICMP port unreachable: nobody serves there, so every query waiting on
                    // this socket fails now rather than at its timeout: a task's wakes with an
                    // error (its sender dropped), a fast-path one moves to the next upstream.
                    let all: Vec<Waiter> = {
                        let mut p = self.pending.lock().expect("pending lock");
                        p.drain().map(|(_, w)| w).collect()
                    };
                    let proxy = proxy.upgrade();
                    for w in all {
                        if let (To::Client(q), Some(proxy)) = (w.to, &proxy) {
                            proxy.ask_from(index + 1, *q);
                        }
                    }
                    continue;
                }
                Err(_) => continue,
            };
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.message_type() != MessageType::Response || m.queries().len() != 1 {
                continue;
            }
            let w = {
                let mut p = self.pending.lock().expect("pending lock");
                if p.get(&m.id()).is_some_and(|w| w.query == m.queries()[0]) {
                    p.remove(&m.id())
                } else {
                    None
                }
            };
            match w.map(|w| w.to) {
                Some(To::Task(tx)) => {
                    let _ = tx.send((buf[..n].to_vec(), m));
                }
                Some(To::Client(q)) => {
                    if let Some(proxy) = proxy.upgrade() {
                        proxy.answer(*q, buf[..n].to_vec(), m);
                    }
                }
                None => {}
            }
        }
    }
}

async fn exchange_tcp(up: SocketAddr, req: &Message, pkt: &[u8]) -> Result<(Vec<u8>, Message)> {
    let mut c = TcpStream::connect(up).await?;
    let mut out = Vec::with_capacity(pkt.len() + 2);
    out.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
    out.extend_from_slice(pkt);
    c.write_all(&out).await?;
    let len = c.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    c.read_exact(&mut buf).await?;
    match Message::from_vec(&buf) {
        Ok(m)
            if m.message_type() == MessageType::Response
                && m.id() == req.id()
                && m.queries() == req.queries() =>
        {
            Ok((buf, m))
        }
        _ => bail!("reply over TCP does not match the query"),
    }
}

/// `ADDR` or `ADDR:PORT` (IPv6 as `[::1]:53` or bare `::1`) → a socket address, port 53 default.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(format!("{s:?}: want an IP address, optionally with :PORT")),
    }
}

/// The nameservers of a resolv.conf, loopback ones included (the proxy can reach them).
pub fn nameservers(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver")).then(|| f.next()).flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// `berth-worker dns-proxy`: serve until SIGTERM/SIGINT, then print the counters.
pub async fn main(listen: Vec<SocketAddr>, cfg: Config) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    sys_raise_nofile();
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let proxy = Proxy::new(cfg)?;
    let mut ls = Vec::new();
    for a in &listen {
        ls.push(bind(*a, false)?);
    }
    let addrs: Vec<String> = ls.iter().map(|l| l.addr.to_string()).collect();
    let ups: Vec<String> = proxy.cfg.upstreams.iter().map(|u| u.to_string()).collect();
    eprintln!(
        "berth-worker dns-proxy: listening on {} (udp, tcp); upstreams {}; aaaa-nxdomain rewrite {}",
        addrs.join(" "),
        ups.join(" "),
        if proxy.cfg.rewrite { "on" } else { "off" }
    );
    proxy
        .serve(ls, async {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
        .await;
    eprintln!("berth-worker dns-proxy: stopped: {}", proxy.stats.line());
    Ok(0)
}

/// Each forwarded TCP query holds a connection: lift the soft fd limit to the hard one.
pub fn sys_raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("10.0.0.1").unwrap(),
            "10.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_addr("10.0.0.1:5353").unwrap(),
            "10.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(parse_addr("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(parse_addr("[::1]:54").unwrap(), "[::1]:54".parse().unwrap());
        assert!(parse_addr("example.com").is_err());
    }

    #[test]
    fn host_nameservers_keep_loopback() {
        let r =
            "search corp.example\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            nameservers(r),
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn nodata_soa_is_owned_by_the_name() {
        let n = Name::from_ascii("a.example.").unwrap();
        let r = synthetic_soa(&n);
        assert_eq!(r.record_type(), RecordType::SOA);
        assert_eq!(r.name(), &n);
    }
}
