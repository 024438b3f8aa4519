//! A man in the middle for tests: relays one node's TCP connections and UDP
//! datagrams to another address, records the datagrams, and can inject
//! bytes into the TCP stream towards the target. What an attacker on the
//! path could do.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running relay on loopback.
pub struct Relay {
    /// Where clients connect (TCP) and send datagrams (UDP).
    pub addr: SocketAddr,
    /// Every datagram relayed towards the target, in order.
    pub datagrams: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The relay's socket towards the target, for replaying datagrams from
    /// the address the target knows.
    pub udp_out: Arc<UdpSocket>,
    /// Writers towards the target of the TCP connections relayed so far.
    pub upstreams: Arc<Mutex<Vec<TcpStream>>>,
    /// Per relayed connection: while set, its bytes are dropped in both
    /// directions and the connection stays open (a silent partition).
    pub frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    /// While set, datagrams are dropped in both directions.
    pub udp_frozen: Arc<AtomicBool>,
    target: SocketAddr,
}

impl Relay {
    /// Relays `port` on 127.0.0.1 (free for TCP and UDP) to `target`.
    pub fn start(port: u16, target: SocketAddr) -> Relay {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr).expect("relay tcp");
        let udp_in = Arc::new(UdpSocket::bind(addr).expect("relay udp"));
        let udp_out = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("relay udp out"));
        let datagrams = Arc::new(Mutex::new(Vec::new()));
        let upstreams = Arc::new(Mutex::new(Vec::new()));
        let frozen = Arc::new(Mutex::new(Vec::new()));
        let udp_frozen = Arc::new(AtomicBool::new(false));
        let (ups, frz) = (upstreams.clone(), frozen.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                let flag = Arc::new(AtomicBool::new(false));
                ups.lock()
                    .expect("upstreams")
                    .push(upstream.try_clone().expect("clone"));
                frz.lock().expect("frozen").push(flag.clone());
                let up = upstream.try_clone().expect("clone");
                pipe(client.try_clone().expect("clone"), up, flag.clone());
                pipe(upstream, client, flag);
            }
        });
        let (seen, out, inn) = (datagrams.clone(), udp_out.clone(), udp_in.clone());
        let (udp_frz, udp_frz_back) = (udp_frozen.clone(), udp_frozen.clone());
        // Client → target; remembers the client to send answers back.
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let back = client.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = inn.recv_from(&mut buf) {
                if udp_frz.load(Ordering::SeqCst) {
                    continue;
                }
                *client.lock().expect("client") = Some(from);
                seen.lock().expect("datagrams").push(buf[..n].to_vec());
                let _ = out.send_to(&buf[..n], target);
            }
        });
        let (out, inn) = (udp_out.clone(), udp_in);
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = out.recv_from(&mut buf) {
                if udp_frz_back.load(Ordering::SeqCst) {
                    continue;
                }
                if let Some(to) = *back.lock().expect("client") {
                    let _ = inn.send_to(&buf[..n], to);
                }
            }
        });
        Relay {
            addr,
            datagrams,
            udp_out,
            upstreams,
            frozen,
            udp_frozen,
            target,
        }
    }

    /// Sends `bytes` into the newest relayed TCP connection, towards the
    /// target, between whatever the client sends.
    pub fn inject(&self, bytes: &[u8]) {
        let mut ups = self.upstreams.lock().expect("upstreams");
        let up = ups.last_mut().expect("a relayed connection");
        up.write_all(bytes).expect("inject");
    }

    /// Drops the bytes of relayed connection `index` (in the order they were
    /// opened) from now on, without closing it.
    pub fn freeze(&self, index: usize) {
        self.frozen.lock().expect("frozen")[index].store(true, Ordering::SeqCst);
    }

    /// Closes relayed connection `index` towards the target.
    pub fn close(&self, index: usize) {
        let ups = self.upstreams.lock().expect("upstreams");
        let _ = ups[index].shutdown(std::net::Shutdown::Both);
    }

    /// Relayed connections so far.
    pub fn connections(&self) -> usize {
        self.upstreams.lock().expect("upstreams").len()
    }

    /// Sends every recorded datagram to the target again, from the relay's
    /// address.
    pub fn replay_datagrams(&self) -> usize {
        let all = self.datagrams.lock().expect("datagrams").clone();
        for d in &all {
            let _ = self.udp_out.send_to(d, self.target);
        }
        all.len()
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(Duration::from_secs(600)));
        let mut buf = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if frozen.load(Ordering::SeqCst) => {}
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        // A frozen connection stays open: a silent partition sends no FIN.
        if !frozen.load(Ordering::SeqCst) {
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        }
    });
}
