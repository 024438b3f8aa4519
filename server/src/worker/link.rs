//! The worker's session with the master, and what wakes its follow loop.

use crate::wire::{self, Reader};
use hypha_repl::FollowerEvent;

/// The session with the master, while there is one.
#[derive(Default)]
pub(super) struct Link {
    pub(super) r: Option<Reader>,
    pub(super) w: Option<wire::Writer>,
    pub(super) snapshot: Option<super::snapshot::Receiving>,
}

impl Link {
    pub(super) fn open(&mut self, r: Reader, w: wire::Writer) {
        (self.r, self.w, self.snapshot) = (Some(r), Some(w), None);
    }

    pub(super) fn close(&mut self) {
        (self.r, self.w, self.snapshot) = (None, None, None);
    }
}

/// An apply the follow loop started; the core's event when it is done.
pub(super) type Applying<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = FollowerEvent> + Send + 'a>>;

/// What woke [`next_event`].
enum Woke {
    Bytes(std::io::Result<bool>),
    Due,
    Beat,
    Applied(FollowerEvent),
}

/// Waits for the next thing the core must hear: a message of the session
/// (when it wants one), its timer, a heartbeat from the master, or the end
/// of the apply in flight (which it polls: dropping this future for a stop
/// leaves the apply where it was).
pub(super) async fn next_event(
    link: &mut Link,
    reading: bool,
    timer: &mut smol::Timer,
    heard: &smol::channel::Receiver<()>,
    applying: &mut Option<Applying<'_>>,
) -> FollowerEvent {
    loop {
        if let Some(r) = link.r.as_mut().filter(|_| reading) {
            match r.try_recv() {
                Ok(Some(msg)) => return FollowerEvent::Received(msg),
                Ok(None) => {}
                Err(e) => {
                    link.close();
                    let why = format!("reading from the master: {e}");
                    return FollowerEvent::Failed { why };
                }
            }
        }
        let fill = async {
            match link.r.as_mut().filter(|_| reading) {
                // `fill` only appends to the decoder's buffer: dropping it
                // for the timer or a heartbeat loses nothing.
                Some(r) => Woke::Bytes(r.fill().await),
                None => std::future::pending().await,
            }
        };
        let due = async {
            (&mut *timer).await;
            Woke::Due
        };
        let beat = async {
            match heard.recv().await {
                Ok(()) => Woke::Beat,
                Err(_) => std::future::pending().await,
            }
        };
        let applied = async {
            match applying.as_mut() {
                Some(apply) => Woke::Applied(apply.await),
                None => std::future::pending().await,
            }
        };
        let woke =
            smol::future::or(fill, smol::future::or(applied, smol::future::or(due, beat))).await;
        match woke {
            Woke::Applied(event) => {
                *applying = None;
                return event;
            }
            Woke::Due => return FollowerEvent::Tick,
            Woke::Beat => return FollowerEvent::MasterHeard,
            Woke::Bytes(Ok(true)) => {}
            Woke::Bytes(Ok(false)) => {
                link.close();
                let why = "the master closed the stream".to_string();
                return FollowerEvent::Failed { why };
            }
            Woke::Bytes(Err(e)) => {
                link.close();
                let why = format!("reading from the master: {e}");
                return FollowerEvent::Failed { why };
            }
        }
    }
}
