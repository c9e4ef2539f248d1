//! The frame meter: what the h2 codec cannot do for a proxy, counted per
//! connection as the client's bytes go by, before h2 sees them.
//!
//! It reads only the 9-byte frame headers of the decrypted stream (length,
//! type, flags) and keeps:
//! - nginx's ratio rule: the connection is cut when all bytes received / 8
//!   exceed the useful payload (DATA and header blocks received, response
//!   bytes sent) + 1 MiB, so a flood of any kind of control frame ends well
//!   before 8 MiB of it have arrived;
//! - per-kind budgets that decay by half every second: PING, SETTINGS,
//!   connection-level WINDOW_UPDATE, PRIORITY, RST_STREAM, empty DATA
//!   frames without END_STREAM, and CONTINUATION frames in one header block;
//! - new streams per read, at most twice `max_concurrent_streams` (nginx);
//! - resets of streams that had reached an upstream (paced rapid reset),
//!   with a budget that decays by half every 30 seconds.
//!
//! A breach is recorded once; the driver then sends GOAWAY ENHANCE_YOUR_CALM
//! and closes. State is plain `Cell`s: one connection, one thread.

use std::cell::{Cell, RefCell};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Why a connection was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    Ratio,
    Ping,
    Settings,
    WindowUpdate,
    Priority,
    Reset,
    EmptyData,
    Continuation,
    NewStreams,
    UpstreamResets,
}

impl Breach {
    pub fn as_str(self) -> &'static str {
        match self {
            Breach::Ratio => "control frames far beyond the payload (flood)",
            Breach::Ping => "PING flood",
            Breach::Settings => "SETTINGS flood",
            Breach::WindowUpdate => "WINDOW_UPDATE flood",
            Breach::Priority => "PRIORITY flood",
            Breach::Reset => "RST_STREAM flood (rapid reset)",
            Breach::EmptyData => "empty DATA flood",
            Breach::Continuation => "CONTINUATION flood",
            Breach::NewStreams => "too many new streams in one read",
            Breach::UpstreamResets => "too many streams reset after reaching an upstream (rapid reset)",
        }
    }
}

/// Budgets per kind, counted with a half-life of one second: a steady
/// rate of about half the budget per second is allowed forever, a burst of
/// the budget at once.
const PING_BUDGET: u32 = 100;
const SETTINGS_BUDGET: u32 = 50;
const WINDOW_UPDATE_BUDGET: u32 = 200;
const PRIORITY_BUDGET: u32 = 100;
const RESET_BUDGET: u32 = 100;
const EMPTY_DATA_BUDGET: u32 = 100;
/// CONTINUATION frames in one header block. A header list within
/// `max_header_list` never needs this many frames of the largest size.
const CONTINUATION_MAX: u32 = 32;
/// Streams reset by the client after they reached an upstream and before a
/// response head went back. Browsers cancel tens on a navigation; an attack
/// sends thousands. Half-life 30 s.
const UPSTREAM_RESET_BUDGET: u32 = 200;
const UPSTREAM_RESET_HALF_LIFE: Duration = Duration::from_secs(30);
/// nginx's allowance before the ratio rule applies.
const RATIO_SLACK: u64 = 1 << 20;

const PREFACE_LEN: u32 = 24;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Counts that halve every `half_life`.
#[derive(Default)]
struct Decaying {
    counts: [Cell<u32>; 7],
    since: Cell<Option<Instant>>,
}

impl Decaying {
    fn decay(&self, now: Instant, half_life: Duration) {
        let since = self.since.get().unwrap_or(now);
        let halvings = (now.saturating_duration_since(since).as_millis() / half_life.as_millis()) as u32;
        if halvings > 0 {
            for c in &self.counts {
                c.set(c.get().checked_shr(halvings).unwrap_or(0));
            }
            self.since.set(Some(since + half_life * halvings));
        } else if self.since.get().is_none() {
            self.since.set(Some(now));
        }
    }

    fn bump(&self, i: usize) -> u32 {
        let n = self.counts[i].get().saturating_add(1);
        self.counts[i].set(n);
        n
    }
}

pub struct Meter {
    /// Preface bytes still to skip, then frame parsing.
    preface_left: Cell<u32>,
    header: Cell<[u8; 9]>,
    header_len: Cell<u8>,
    /// Payload bytes of the current frame still to come.
    payload_left: Cell<u32>,
    continuations: Cell<u32>,
    total: Cell<u64>,
    payload: Cell<u64>,
    budgets: Decaying,
    upstream_resets: Decaying,
    max_new_streams: u32,
    breach: Cell<Option<Breach>>,
    waker: RefCell<Option<Waker>>,
}

const K_PING: usize = 0;
const K_SETTINGS: usize = 1;
const K_WINDOW: usize = 2;
const K_PRIORITY: usize = 3;
const K_RESET: usize = 4;
const K_EMPTY: usize = 5;

impl Meter {
    /// `preface`: the client's connection preface is still to come on the
    /// metered bytes.
    pub fn new(max_concurrent_streams: u32, preface: bool) -> Meter {
        Meter {
            preface_left: Cell::new(if preface { PREFACE_LEN } else { 0 }),
            header: Cell::new([0; 9]),
            header_len: Cell::new(0),
            payload_left: Cell::new(0),
            continuations: Cell::new(0),
            total: Cell::new(0),
            payload: Cell::new(0),
            budgets: Decaying::default(),
            upstream_resets: Decaying::default(),
            max_new_streams: max_concurrent_streams.saturating_mul(2).max(1),
            breach: Cell::new(None),
            waker: RefCell::new(None),
        }
    }

    pub fn breach(&self) -> Option<Breach> {
        self.breach.get()
    }

    fn trip(&self, b: Breach) {
        if self.breach.get().is_none() {
            self.breach.set(Some(b));
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Ready once a budget was breached.
    pub fn poll_breach(&self, cx: &mut Context<'_>) -> Poll<Breach> {
        match self.breach.get() {
            Some(b) => Poll::Ready(b),
            None => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Response bytes sent count as payload: a client that downloads sends
    /// WINDOW_UPDATEs in proportion.
    pub fn sent(&self, n: usize) {
        self.payload.set(self.payload.get() + n as u64);
    }

    /// A client reset of a stream that had reached an upstream.
    pub fn upstream_reset(&self) {
        self.upstream_resets
            .decay(Instant::now(), UPSTREAM_RESET_HALF_LIFE);
        if self.upstream_resets.bump(0) > UPSTREAM_RESET_BUDGET {
            self.trip(Breach::UpstreamResets);
        }
    }

    /// Meters bytes read from the client. `Err` when they breach a budget:
    /// they must not reach the codec.
    pub fn read(&self, mut bytes: &[u8]) -> Result<(), Breach> {
        if let Some(b) = self.breach.get() {
            return Err(b);
        }
        self.total.set(self.total.get() + bytes.len() as u64);
        let skip = (self.preface_left.get() as usize).min(bytes.len());
        self.preface_left.set(self.preface_left.get() - skip as u32);
        bytes = &bytes[skip..];
        self.budgets.decay(Instant::now(), Duration::from_secs(1));
        let mut new_streams = 0u32;
        while !bytes.is_empty() {
            let left = self.payload_left.get() as usize;
            if left > 0 {
                let n = left.min(bytes.len());
                self.payload_left.set((left - n) as u32);
                bytes = &bytes[n..];
                continue;
            }
            // Gather a frame header, possibly across reads.
            let mut h = self.header.get();
            let have = self.header_len.get() as usize;
            let n = (9 - have).min(bytes.len());
            h[have..have + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if have + n < 9 {
                self.header.set(h);
                self.header_len.set((have + n) as u8);
                break;
            }
            self.header_len.set(0);
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            self.payload_left.set(len);
            self.frame(kind, flags, stream, len, &mut new_streams)?;
        }
        if self.total.get() / 8 > self.payload.get() + RATIO_SLACK {
            self.trip(Breach::Ratio);
            return Err(Breach::Ratio);
        }
        Ok(())
    }

    fn frame(&self, kind: u8, flags: u8, stream: u32, len: u32, new_streams: &mut u32) -> Result<(), Breach> {
        let over = |i: usize, budget: u32, b: Breach| {
            if self.budgets.bump(i) > budget {
                self.trip(b);
                Err(b)
            } else {
                Ok(())
            }
        };
        match kind {
            DATA => {
                self.payload.set(self.payload.get() + u64::from(len));
                if len == 0 && flags & END_STREAM == 0 {
                    over(K_EMPTY, EMPTY_DATA_BUDGET, Breach::EmptyData)?;
                }
            }
            HEADERS => {
                self.payload.set(self.payload.get() + u64::from(len));
                self.continuations.set(0);
                *new_streams += 1;
                if *new_streams > self.max_new_streams {
                    self.trip(Breach::NewStreams);
                    return Err(Breach::NewStreams);
                }
            }
            CONTINUATION => {
                self.payload.set(self.payload.get() + u64::from(len));
                let n = self.continuations.get() + 1;
                self.continuations
                    .set(if flags & END_HEADERS != 0 { 0 } else { n });
                if n > CONTINUATION_MAX {
                    self.trip(Breach::Continuation);
                    return Err(Breach::Continuation);
                }
            }
            PRIORITY => over(K_PRIORITY, PRIORITY_BUDGET, Breach::Priority)?,
            RST_STREAM => over(K_RESET, RESET_BUDGET, Breach::Reset)?,
            SETTINGS => over(K_SETTINGS, SETTINGS_BUDGET, Breach::Settings)?,
            PING => over(K_PING, PING_BUDGET, Breach::Ping)?,
            WINDOW_UPDATE if stream == 0 => over(K_WINDOW, WINDOW_UPDATE_BUDGET, Breach::WindowUpdate)?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_ping_flood_breaches_and_a_few_pings_do_not() {
        let m = Meter::new(128, false);
        for _ in 0..PING_BUDGET {
            m.read(&frame(PING, 0, 0, &[0; 8])).unwrap();
        }
        assert_eq!(m.read(&frame(PING, 0, 0, &[0; 8])), Err(Breach::Ping));
        assert_eq!(m.breach(), Some(Breach::Ping));
    }

    #[test]
    fn frame_headers_split_across_reads_are_parsed() {
        let m = Meter::new(128, true);
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..SETTINGS_BUDGET + 1 {
            bytes.extend(frame(SETTINGS, 0, 0, &[0; 6]));
        }
        let mut res = Ok(());
        for b in bytes.chunks(5) {
            res = m.read(b);
            if res.is_err() {
                break;
            }
        }
        assert_eq!(res, Err(Breach::Settings));
    }

    #[test]
    fn data_payload_keeps_the_ratio_and_window_updates_past_it_breach() {
        let m = Meter::new(128, false);
        // 1 MiB of DATA is useful payload: any amount of it passes.
        for _ in 0..64 {
            m.read(&frame(DATA, 0, 1, &[0; 16384])).unwrap();
        }
        // Stream-level WINDOW_UPDATEs have no per-second budget, only the ratio.
        let wu = frame(WINDOW_UPDATE, 0, 1, &[0, 0, 0, 1]);
        let mut sent = 0usize;
        while m.read(&wu).is_ok() {
            sent += wu.len();
            assert!(sent < 32 << 20, "never breached");
        }
        assert_eq!(m.breach(), Some(Breach::Ratio));
        // Cut before about 8 MiB of control frames beyond 8 x (payload + slack).
        assert!(sent < 8 * ((1 << 20) + (64 * 16384)) + (1 << 20), "{sent}");
    }

    #[test]
    fn continuation_chains_are_bounded_per_block() {
        let m = Meter::new(128, false);
        m.read(&frame(HEADERS, 0, 1, &[0; 4])).unwrap();
        let mut res = Ok(());
        for _ in 0..=CONTINUATION_MAX {
            res = m.read(&frame(CONTINUATION, 0, 1, &[0; 1]));
        }
        assert_eq!(res, Err(Breach::Continuation));
        // Ended blocks start the count again.
        let m = Meter::new(128, false);
        for _ in 0..100 {
            m.read(&frame(HEADERS, 0, 1, &[0; 4])).unwrap();
            m.read(&frame(CONTINUATION, END_HEADERS, 1, &[0; 1])).unwrap();
            let _ = m.read(&frame(DATA, END_STREAM, 1, &[]));
        }
        assert_eq!(m.breach(), None);
    }

    #[test]
    fn new_streams_per_read_are_capped() {
        let m = Meter::new(4, false);
        let mut burst = Vec::new();
        for i in 0..9u32 {
            burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &[0x82]));
        }
        assert_eq!(m.read(&burst), Err(Breach::NewStreams));
        let m = Meter::new(4, false);
        burst.truncate(8 * 10);
        assert!(m.read(&burst).is_ok());
    }

    #[test]
    fn upstream_resets_breach_past_their_budget() {
        let m = Meter::new(128, false);
        for _ in 0..UPSTREAM_RESET_BUDGET {
            m.upstream_reset();
        }
        assert_eq!(m.breach(), None);
        m.upstream_reset();
        assert_eq!(m.breach(), Some(Breach::UpstreamResets));
    }
}
