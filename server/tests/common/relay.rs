//! A man in the middle for tests: relays one node's TCP connections and UDP
//! datagrams to another address, records the datagrams, and can inject
//! bytes into the TCP stream towards the target. What an attacker on the
//! path could do.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
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
        let ups = upstreams.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                ups.lock()
                    .expect("upstreams")
                    .push(upstream.try_clone().expect("clone"));
                pipe(
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                pipe(upstream, client);
            }
        });
        let (seen, out, inn) = (datagrams.clone(), udp_out.clone(), udp_in.clone());
        // Client → target; remembers the client to send answers back.
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let back = client.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = inn.recv_from(&mut buf) {
                *client.lock().expect("client") = Some(from);
                seen.lock().expect("datagrams").push(buf[..n].to_vec());
                let _ = out.send_to(&buf[..n], target);
            }
        });
        let (out, inn) = (udp_out.clone(), udp_in);
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = out.recv_from(&mut buf) {
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

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(Duration::from_secs(600)));
        let mut buf = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
        let _ = from.shutdown(std::net::Shutdown::Both);
    });
}
