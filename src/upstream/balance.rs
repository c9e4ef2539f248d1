//! Choosing a server within an upstream. Every rule here is a pure function
//! of its inputs (weights, requests in flight, a client address, a random
//! number), so each can be tested without I/O; `UpstreamState::select` feeds
//! them the worker's state and decides which servers are candidates (live,
//! not yet tried for this request, primaries before backups).
//!
//! Round robin is smooth weighted round robin, the sequence nginx produces
//! (servers a=5, b=1, c=1 give a a b a c a a, never five a's in a row). State
//! is per worker, so no two workers contend for it.
//!
//! Also here: the hash of request keys and the ketama ring of `hash`, the
//! peak-EWMA latency estimates of `ewma`, and the cookie ids of `sticky`.
//! Hashes use fixed constants (FNV-1a, a murmur finaliser), so every worker
//! and every restart agree.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub struct RoundRobin {
    weights: Vec<i64>,
    current: RefCell<Vec<i64>>,
}

impl RoundRobin {
    pub fn new(weights: impl IntoIterator<Item = u32>) -> RoundRobin {
        let weights: Vec<i64> = weights.into_iter().map(i64::from).collect();
        let current = RefCell::new(vec![0; weights.len()]);
        RoundRobin { weights, current }
    }

    /// The next server index.
    pub fn next(&self) -> usize {
        self.next_among(|_| true).unwrap_or(0)
    }

    /// The next server index among those `ok` accepts, or `None` when it
    /// accepts none. Servers left out neither gain nor lose credit, as in
    /// nginx, where a server that is down is skipped the same way.
    pub fn next_among(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        if self.weights.len() == 1 {
            return ok(0).then_some(0);
        }
        let mut current = self.current.borrow_mut();
        let mut best: Option<usize> = None;
        let mut total = 0;
        for i in 0..self.weights.len() {
            if !ok(i) {
                continue;
            }
            current[i] += self.weights[i];
            total += self.weights[i];
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }
}

/// `a` carries less load than `b`: fewer requests in flight per unit of
/// weight, compared by cross-multiplying so no division rounds.
fn lighter(a: (u32, u32), b: (u32, u32)) -> std::cmp::Ordering {
    let (active_a, weight_a) = a;
    let (active_b, weight_b) = b;
    (u64::from(active_a) * u64::from(weight_b)).cmp(&(u64::from(active_b) * u64::from(weight_a)))
}

/// least_conn: the server among `ok` with the fewest requests in flight per
/// unit of weight; several equally light ones share by round robin.
pub fn least_conn(
    rr: &RoundRobin,
    weights: &[u32],
    active: impl Fn(usize) -> u32,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let best = (0..weights.len())
        .filter(|&i| ok(i))
        .min_by(|&a, &b| lighter((active(a), weights[a]), (active(b), weights[b])))?;
    let load = (active(best), weights[best]);
    rr.next_among(|i| ok(i) && lighter((active(i), weights[i]), load).is_eq())
}

/// FNV-1a, 64 bit: fixed constants, so the same input gives the same hash in
/// every worker and after every restart (std's `RandomState` would not).
pub fn fnv1a(bytes: &[u8], seed: u8) -> u64 {
    fnv_step(fnv_step(FNV_OFFSET, bytes), &[seed])
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_step(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How many times ip_hash hashes again when it lands on a server that is
/// down before giving up (nginx uses 20 too).
const IP_HASH_ATTEMPTS: u8 = 20;

/// ip_hash: the client address hashed onto the weights of the servers in
/// `tier`, so a client keeps its server while that server is up. When the
/// server it lands on is not `live`, the address is hashed again with a
/// different seed; the clients of a server that is down spread over the
/// others, and everyone else stays put. `None` after `IP_HASH_ATTEMPTS`
/// misses: the caller falls back to round robin. The whole address is
/// hashed (nginx's ip_hash takes only the first three octets of an IPv4
/// address, which puts a whole /24 on one server).
///
/// FNV-1a alone is not enough here: the last bytes of an address reach only
/// the hash's low bits through a multiplication, and the modulo keeps mostly
/// those, so addresses that differ in correlated bytes (127.0.k.(1+17k))
/// all landed on one server. The murmur finaliser spreads every input bit
/// over the whole word first, as for the keys of `hash`.
pub fn ip_hash(
    client: IpAddr,
    weights: &[u32],
    tier: impl Fn(usize) -> bool,
    live: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total = weight_of(weights, &tier);
    if total == 0 {
        return None;
    }
    let v6;
    let v4;
    let bytes: &[u8] = match client {
        IpAddr::V4(a) => {
            v4 = a.octets();
            &v4
        }
        IpAddr::V6(a) => {
            v6 = a.octets();
            &v6
        }
    };
    for attempt in 0..IP_HASH_ATTEMPTS {
        let slot = mix64(fnv1a(bytes, attempt)) % total;
        let i = weighted_slot(weights, &tier, slot)?;
        if live(i) {
            return Some(i);
        }
    }
    None
}

/// The summed weight of the servers `ok` accepts.
fn weight_of(weights: &[u32], ok: impl Fn(usize) -> bool) -> u64 {
    (0..weights.len())
        .filter(|&i| ok(i))
        .map(|i| u64::from(weights[i]))
        .sum()
}

/// The server that owns `slot` when the weights of the servers `ok` accepts
/// are laid end to end.
fn weighted_slot(weights: &[u32], ok: impl Fn(usize) -> bool, mut slot: u64) -> Option<usize> {
    for (i, &w) in weights.iter().enumerate() {
        if !ok(i) {
            continue;
        }
        if slot < u64::from(w) {
            return Some(i);
        }
        slot -= u64::from(w);
    }
    None
}

/// A xorshift64* generator: a few instructions per number, state per worker.
/// Not for anything secret; it only spreads load.
pub struct XorShift(Cell<u64>);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Zero is xorshift's one fixed point.
        XorShift(Cell::new(seed | 1))
    }

    pub fn next_u64(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// random_two, the power of two choices: two servers drawn at random by
/// weight among `ok`, and the one with fewer requests in flight per unit of
/// weight taken (the first drawn on a tie). Nearly as even as least_conn,
/// without every request looking at every server.
pub fn random_two(
    rng: &XorShift,
    weights: &[u32],
    active: impl Fn(usize) -> u32,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total = weight_of(weights, &ok);
    if total == 0 {
        return None;
    }
    let a = weighted_slot(weights, &ok, rng.next_u64() % total)?;
    let b = weighted_slot(weights, &ok, rng.next_u64() % total)?;
    if lighter((active(b), weights[b]), (active(a), weights[a])).is_lt() {
        Some(b)
    } else {
        Some(a)
    }
}

/// A server's peak EWMA of latency, as Finagle's and linkerd's balancers
/// keep it: an exponentially weighted moving average over time (an
/// observation `t` ago weighs `exp(-t / decay)`), except that a latency above
/// the average replaces it at once, so a server that turns slow is avoided
/// from its first slow answer and forgiven only gradually. Without new
/// observations the estimate decays towards zero, so a server once slow is
/// tried again after a few decay times. Per worker, like all balancer state.
#[derive(Default)]
pub struct PeakEwma {
    /// Nanoseconds.
    cost: Cell<f64>,
    stamp: Cell<Option<Instant>>,
}

impl PeakEwma {
    /// A latency observed at `now`.
    pub fn observe(&self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let cost = self.cost.get();
        self.cost.set(if rtt > cost {
            rtt
        } else {
            let w = self.weight_since(now, decay);
            cost * w + rtt * (1.0 - w)
        });
        self.stamp.set(Some(now));
    }

    /// The estimate at `now` in nanoseconds, decayed since the last observation.
    pub fn cost_at(&self, now: Instant, decay: Duration) -> f64 {
        self.cost.get() * self.weight_since(now, decay)
    }

    fn weight_since(&self, now: Instant, decay: Duration) -> f64 {
        match self.stamp.get() {
            Some(t) => (-(now.saturating_duration_since(t).as_secs_f64()) / decay.as_secs_f64()).exp(),
            None => 1.0,
        }
    }
}

/// The load ewma compares: the latency estimate times the requests that
/// would be waiting (those in flight and this one), per unit of weight. A
/// server with no estimate yet but requests in flight is taken as slow
/// (`UNKNOWN_COST` each), so a burst does not all go to a new server.
pub fn ewma_load(cost: f64, active: u32, weight: u32) -> f64 {
    const UNKNOWN_COST: f64 = 1e9;
    let cost = if cost == 0.0 && active > 0 {
        UNKNOWN_COST
    } else {
        cost
    };
    cost * f64::from(active + 1) / f64::from(weight.max(1))
}

/// ewma: two different servers drawn at random by weight among `ok`, and the
/// one with the lower [`ewma_load`] taken (the first drawn on a tie).
pub fn ewma_pick(
    rng: &XorShift,
    weights: &[u32],
    load: impl Fn(usize) -> f64,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total = weight_of(weights, &ok);
    if total == 0 {
        return None;
    }
    let a = weighted_slot(weights, &ok, rng.next_u64() % total)?;
    let rest = total - u64::from(weights[a]);
    if rest == 0 {
        return Some(a);
    }
    let others = |i: usize| i != a && ok(i);
    let b = weighted_slot(weights, others, rng.next_u64() % rest)?;
    if load(b) < load(a) {
        Some(b)
    } else {
        Some(a)
    }
}

/// The finaliser of MurmurHash3's 64-bit variant: spreads FNV's output, whose
/// high bits change little between inputs that differ only at the end (the
/// point numbers of one server, paths with the same prefix).
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Where a request key falls on a [`Ring`].
pub fn ring_hash(key: &[u8]) -> u32 {
    (mix64(fnv1a(key, 0)) >> 32) as u32
}

/// [`ring_hash`] of a key given in pieces, so a key made of several request
/// parts is hashed where it lies, without being copied together first.
pub struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> KeyHasher {
        KeyHasher(FNV_OFFSET)
    }
}

impl KeyHasher {
    pub fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv_step(self.0, bytes);
    }

    pub fn finish(&self) -> u32 {
        (mix64(fnv_step(self.0, &[0])) >> 32) as u32
    }
}

/// `sticky`: the cookie value that names a server, 16 hex digits of a hash
/// of its address as written in the config. The same in every worker and
/// after a restart, unchanged when servers are added or reordered, and
/// telling nothing of the address itself to the client. It is not a secret:
/// a client may name any server of the upstream, as it could by retrying.
pub fn sticky_id(authority: &str) -> [u8; 16] {
    let h = mix64(fnv1a(authority.as_bytes(), b's'));
    let mut out = [0u8; 16];
    for (k, d) in out.iter_mut().enumerate() {
        *d = b"0123456789abcdef"[((h >> (60 - 4 * k)) & 0xf) as usize];
    }
    out
}

/// The `Set-Cookie` field line (RFC 6265 §4.1) naming the server `id`.
pub fn set_cookie_line(st: &crate::config::Sticky, id: &[u8; 16]) -> Vec<u8> {
    let mut line = format!("Set-Cookie: {}=", st.cookie).into_bytes();
    line.extend_from_slice(id);
    line.extend_from_slice(format!("; Path={}", st.path).as_bytes());
    if let Some(d) = &st.domain {
        line.extend_from_slice(format!("; Domain={d}").as_bytes());
    }
    if let Some(age) = st.max_age {
        line.extend_from_slice(format!("; Max-Age={}", age.as_secs()).as_bytes());
    }
    if st.httponly {
        line.extend_from_slice(b"; HttpOnly");
    }
    if st.secure {
        line.extend_from_slice(b"; Secure");
    }
    if let Some(s) = st.samesite {
        line.extend_from_slice(format!("; SameSite={s}").as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// A consistent-hash ring in the manner of ketama: each server owns
/// `POINTS_PER_WEIGHT` points per unit of weight, placed by hashing its
/// address as written in the config (not its position in the list), and a key
/// goes to the owner of the first point at or after the key's hash. Taking a
/// server away moves only the keys it owned; the others keep their server.
pub struct Ring {
    points: Vec<(u32, usize)>,
}

impl Ring {
    pub const POINTS_PER_WEIGHT: u32 = 160;

    /// `servers`: (index, name, weight) of each server on the ring.
    pub fn new<'a>(servers: impl IntoIterator<Item = (usize, &'a str, u32)>) -> Ring {
        let mut points = Vec::new();
        for (i, name, weight) in servers {
            let base = fnv1a(name.as_bytes(), 0);
            for j in 0..u64::from(weight * Self::POINTS_PER_WEIGHT) {
                let p = mix64(base ^ j.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                points.push(((p >> 32) as u32, i));
            }
        }
        // Equal points (rare) are ordered by server, so every worker and
        // every restart builds the same ring.
        points.sort_unstable();
        Ring { points }
    }

    /// The server owning `hash`, or the next one round the ring that is
    /// `live`. `None` after `RING_STEPS` points with no live owner: the caller
    /// falls back to round robin, as nginx does.
    pub fn lookup(&self, hash: u32, live: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|&(p, _)| p < hash);
        let mut last = usize::MAX;
        let mut steps = 0;
        for k in 0..self.points.len() {
            let (_, i) = self.points[(start + k) % self.points.len()];
            if i == last {
                // Several points of one server in a row say nothing new.
                continue;
            }
            if live(i) {
                return Some(i);
            }
            last = i;
            steps += 1;
            if steps == RING_STEPS {
                break;
            }
        }
        None
    }
}

/// Different servers a ring lookup passes before giving up.
const RING_STEPS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_sequence() {
        let rr = RoundRobin::new([5, 1, 1]);
        let seq: Vec<usize> = (0..7).map(|_| rr.next()).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
        let rr = RoundRobin::new([1, 2]);
        let seq: Vec<usize> = (0..6).map(|_| rr.next()).collect();
        assert_eq!(seq, [1, 0, 1, 1, 0, 1]);
    }

    #[test]
    fn single_server() {
        let rr = RoundRobin::new([3]);
        assert!((0..5).all(|_| rr.next() == 0));
        assert_eq!(rr.next_among(|_| false), None);
    }

    #[test]
    fn round_robin_skips_servers_left_out() {
        let rr = RoundRobin::new([5, 1, 1]);
        let seq: Vec<usize> = (0..4).map(|_| rr.next_among(|i| i != 0).unwrap()).collect();
        assert_eq!(seq, [1, 2, 1, 2]);
        assert_eq!(rr.next_among(|_| false), None);
    }

    #[test]
    fn least_conn_takes_the_lightest_per_weight() {
        let rr = RoundRobin::new([1, 1, 1]);
        let active = [3, 1, 2];
        assert_eq!(least_conn(&rr, &[1, 1, 1], |i| active[i], |_| true), Some(1));
        // Weight 4 with 3 in flight is lighter than weight 1 with 1.
        let rr = RoundRobin::new([4, 1]);
        let active = [3, 1];
        assert_eq!(least_conn(&rr, &[4, 1], |i| active[i], |_| true), Some(0));
        // Only among the servers allowed.
        assert_eq!(least_conn(&rr, &[4, 1], |i| active[i], |i| i == 1), Some(1));
        assert_eq!(least_conn(&rr, &[4, 1], |i| active[i], |_| false), None);
    }

    #[test]
    fn least_conn_ties_go_round_robin() {
        let rr = RoundRobin::new([1, 1, 1]);
        let active = [0, 5, 0];
        let seq: Vec<usize> = (0..4)
            .map(|_| least_conn(&rr, &[1, 1, 1], |i| active[i], |_| true).unwrap())
            .collect();
        assert_eq!(seq, [0, 2, 0, 2]);
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; the seed byte follows.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        h ^= u64::from(b'a');
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        assert_eq!(h, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"", b'a'), h);
    }

    #[test]
    fn ip_hash_is_stable_weighted_and_moves_only_the_clients_of_a_down_server() {
        let weights = [1, 1, 2];
        let clients: Vec<IpAddr> = (0..2000u32)
            .map(|n| IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]))
            .collect();
        let pick = |c: IpAddr, live: &dyn Fn(usize) -> bool| ip_hash(c, &weights, |_| true, live).unwrap();
        let all: Vec<usize> = clients.iter().map(|&c| pick(c, &|_| true)).collect();
        // The same answer every time: nothing random or per process in it.
        assert_eq!(
            all,
            clients.iter().map(|&c| pick(c, &|_| true)).collect::<Vec<_>>()
        );
        let mut counts = [0usize; 3];
        for &i in &all {
            counts[i] += 1;
        }
        // Weight 2 gets about half.
        assert!((800..1200).contains(&counts[2]), "{counts:?}");
        assert!(counts[0] > 300 && counts[1] > 300, "{counts:?}");
        // Server 1 down: only its clients move.
        let without: Vec<usize> = clients.iter().map(|&c| pick(c, &|i| i != 1)).collect();
        for (before, after) in all.iter().zip(&without) {
            assert_ne!(*after, 1);
            if *before != 1 {
                assert_eq!(before, after);
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(pick(v6, &|_| true), pick(v6, &|_| true));
        assert_eq!(ip_hash(v6, &weights, |_| true, |_| false), None);
    }

    /// How many of `clients` land on each of three equal servers.
    fn spread(clients: impl IntoIterator<Item = IpAddr>) -> [usize; 3] {
        let mut counts = [0usize; 3];
        for c in clients {
            counts[ip_hash(c, &[1, 1, 1], |_| true, |_| true).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn ip_hash_spreads_correlated_addresses() {
        // The case reported: every one of these went to the first server.
        let reported = spread((1..=12u8).map(|k| IpAddr::from([127, 0, k, 1 + 17 * k])));
        assert!(reported.iter().all(|&n| n >= 2), "{reported:?}");

        let v6 = |segs: [u16; 8]| IpAddr::from(segs);
        let sets: Vec<(&str, Vec<IpAddr>)> = vec![
            (
                "sequential",
                (0..600u32)
                    .map(|n| IpAddr::from((0x0a00_0000 + n).to_be_bytes()))
                    .collect(),
            ),
            (
                "one /24",
                (0..=255u8).map(|n| IpAddr::from([192, 168, 7, n])).collect(),
            ),
            (
                "one /16, correlated bytes",
                (0..600u32)
                    .map(|k| IpAddr::from([172, 16, k as u8, (1 + 17 * k) as u8]))
                    .collect(),
            ),
            (
                "one /16, every 109th",
                (0..600u32)
                    .map(|k| IpAddr::from([172, 16, ((k * 109) >> 8) as u8, (k * 109) as u8]))
                    .collect(),
            ),
            (
                "IPv6, one host in each of sequential /64s",
                (0..600u16)
                    .map(|n| v6([0x2001, 0xdb8, 0, n, 0, 0, 0, 1]))
                    .collect(),
            ),
            (
                "IPv6, sequential hosts in one /64",
                (0..600u16)
                    .map(|n| v6([0x2001, 0xdb8, 0, 7, 0, 0, 0, n]))
                    .collect(),
            ),
        ];
        for (what, clients) in sets {
            let share = clients.len() as f64 / 3.0;
            let counts = spread(clients);
            // Within 15% of an even share (random placement would be
            // within about 2.5 standard deviations of it).
            assert!(
                counts.iter().all(|&n| (n as f64 - share).abs() <= 0.15 * share),
                "{what}: {counts:?}"
            );
        }
    }

    #[test]
    fn random_two_prefers_the_less_busy_of_two() {
        let rng = XorShift::new(7);
        // Server 0 is busy: it wins only when drawn twice (about 1 in 4).
        let active = [10, 0];
        let mut counts = [0usize; 2];
        for _ in 0..1000 {
            counts[random_two(&rng, &[1, 1], |i| active[i], |_| true).unwrap()] += 1;
        }
        assert!((150..350).contains(&counts[0]), "{counts:?}");
        // Never a server left out, and none at all when all are.
        assert!((0..100).all(|_| random_two(&rng, &[1, 1], |_| 0, |i| i == 1) == Some(1)));
        assert_eq!(random_two(&rng, &[1, 1], |_| 0, |_| false), None);
    }

    #[test]
    fn peak_ewma_jumps_to_a_peak_and_decays_slowly() {
        let e = PeakEwma::default();
        let t0 = Instant::now();
        let tau = Duration::from_secs(10);
        let ms = |n: u64| Duration::from_millis(n);
        e.observe(ms(10), t0, tau);
        assert_eq!(e.cost_at(t0, tau), 10e6);
        // A slower answer replaces the estimate at once.
        e.observe(ms(50), t0 + ms(1), tau);
        assert_eq!(e.cost_at(t0 + ms(1), tau), 50e6);
        // A faster one a decay time later moves it 1 - 1/e of the way.
        e.observe(ms(10), t0 + ms(1) + tau, tau);
        let c = e.cost_at(t0 + ms(1) + tau, tau);
        assert!((c - (10e6 + 40e6 / std::f64::consts::E)).abs() < 1e3, "{c}");
        // Unobserved, it decays towards zero.
        assert!(e.cost_at(t0 + tau * 20, tau) < 1e3);
    }

    #[test]
    fn ewma_takes_the_lower_load_of_two_different_servers() {
        let rng = XorShift::new(3);
        // Two servers: both are always drawn, so the lighter always wins.
        let costs = [5e6, 1e5];
        let load = |i: usize| ewma_load(costs[i], 0, 1);
        assert!((0..100).all(|_| ewma_pick(&rng, &[1, 1], load, |_| true) == Some(1)));
        // Requests in flight multiply the cost: 1e5 * 60 > 5e6.
        let active = [0, 59];
        let load = |i: usize| ewma_load(costs[i], active[i], 1);
        assert!((0..100).all(|_| ewma_pick(&rng, &[1, 1], load, |_| true) == Some(0)));
        // No estimate yet: idle is the lightest, busy the heaviest.
        assert_eq!(ewma_load(0.0, 0, 1), 0.0);
        assert!(ewma_load(0.0, 1, 1) > ewma_load(5e6, 10, 1));
        // Three servers: the heaviest wins only if drawn with nothing else, never.
        let costs = [9e9, 1.0, 2.0];
        let mut counts = [0usize; 3];
        for _ in 0..300 {
            counts[ewma_pick(&rng, &[1, 1, 1], |i| costs[i], |_| true).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0, "{counts:?}");
        assert!(counts[2] > 50, "{counts:?}");
        assert!((0..50).all(|_| ewma_pick(&rng, &[1, 1, 1], |i| costs[i], |i| i == 0) == Some(0)));
        assert_eq!(ewma_pick(&rng, &[1, 1], |_| 0.0, |_| false), None);
    }

    #[test]
    fn xorshift_is_seeded_and_never_stuck() {
        let a = XorShift::new(0);
        let b = XorShift::new(1);
        assert_eq!(a.next_u64(), b.next_u64());
        let c = XorShift::new(2);
        assert_ne!(XorShift::new(4).next_u64(), c.next_u64());
        assert!((0..100).all(|_| a.next_u64() != 0));
    }

    fn uris(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("/item/{i}?v={}", i % 7)).collect()
    }

    #[test]
    fn ring_moves_only_the_keys_of_a_removed_server() {
        let names = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
        let full = Ring::new(names.iter().enumerate().map(|(i, n)| (i, *n, 1)));
        // The same servers without the third; indexes shift, names do not.
        let kept = [0usize, 1, 3];
        let smaller = Ring::new(kept.iter().enumerate().map(|(i, &k)| (i, names[k], 1)));
        let keys = uris(4000);
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for key in &keys {
            let h = ring_hash(key.as_bytes());
            let before = full.lookup(h, |_| true).unwrap();
            let after = kept[smaller.lookup(h, |_| true).unwrap()];
            counts[before] += 1;
            if before == 2 {
                moved += 1;
                assert_ne!(after, 2);
            } else {
                assert_eq!(before, after, "{key} moved though its server stayed");
            }
            // Marking the server down instead of removing it: the same answer.
            assert_eq!(full.lookup(h, |i| i != 2).unwrap(), after, "{key}");
        }
        // 160 points each: close to a quarter of the keys per server.
        assert!(counts.iter().all(|&c| (700..1300).contains(&c)), "{counts:?}");
        assert_eq!(moved, counts[2]);
    }

    #[test]
    fn ring_gives_an_added_server_about_one_in_n_keys_and_moves_no_other() {
        let names = ["app1:80", "app2:80", "app3:80", "app4:80", "app5:80"];
        let four = Ring::new(names[..4].iter().enumerate().map(|(i, n)| (i, *n, 1)));
        let five = Ring::new(names.iter().enumerate().map(|(i, n)| (i, *n, 1)));
        let keys = uris(10_000);
        let mut moved = 0;
        for key in &keys {
            let h = ring_hash(key.as_bytes());
            let (before, after) = (
                four.lookup(h, |_| true).unwrap(),
                five.lookup(h, |_| true).unwrap(),
            );
            if before != after {
                assert_eq!(after, 4, "{key} moved between old servers");
                moved += 1;
            }
        }
        // Fixed names and keys: the same figure every run (1/5 is 2000).
        assert!((1700..2300).contains(&moved), "{moved}");
    }

    #[test]
    fn sticky_ids_are_fixed_hex_per_address() {
        let a = sticky_id("10.0.0.1:80");
        assert_eq!(a, sticky_id("10.0.0.1:80"));
        assert_ne!(a, sticky_id("10.0.0.2:80"));
        assert!(a.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let st = crate::config::Sticky {
            cookie: "srv".into(),
            path: "/app".into(),
            domain: Some("example.com".into()),
            max_age: Some(std::time::Duration::from_secs(3600)),
            httponly: true,
            secure: true,
            samesite: Some("Lax"),
        };
        let line = String::from_utf8(set_cookie_line(&st, b"0123456789abcdef")).unwrap();
        assert_eq!(
            line,
            "Set-Cookie: srv=0123456789abcdef; Path=/app; Domain=example.com; Max-Age=3600; HttpOnly; Secure; SameSite=Lax\r\n"
        );
    }

    #[test]
    fn a_key_hashed_in_pieces_hashes_as_a_whole() {
        let mut h = KeyHasher::default();
        for piece in ["/img/", "", "1.png", "?v=2"] {
            h.write(piece.as_bytes());
        }
        assert_eq!(h.finish(), ring_hash(b"/img/1.png?v=2"));
        assert_eq!(KeyHasher::default().finish(), ring_hash(b""));
    }

    #[test]
    fn ring_points_follow_weight() {
        let ring = Ring::new([(0, "a:1", 1), (1, "b:1", 3)]);
        assert_eq!(ring.points.len(), 4 * Ring::POINTS_PER_WEIGHT as usize);
        let on_b = uris(4000)
            .iter()
            .filter(|k| ring.lookup(ring_hash(k.as_bytes()), |_| true) == Some(1))
            .count();
        assert!((2600..3400).contains(&on_b), "{on_b}");
        assert_eq!(ring.lookup(1, |_| false), None);
        assert_eq!(Ring::new([]).lookup(1, |_| true), None);
    }
}
