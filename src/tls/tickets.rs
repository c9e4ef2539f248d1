//! Session tickets for TLS 1.2 and 1.3 resumption, the same in every
//! worker without a shared table: each worker derives the key of a period
//! from one process secret, the period and the server block's scope.

use std::sync::OnceLock;

use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::sign::CertifiedKey;

use super::server::unix_now;

/// Session-ticket keys change every period; a ticket is accepted during the
/// period it was issued in and the next one, so it lives one to two periods.
pub const TICKET_PERIOD_SECS: u64 = 3600;

/// What ticket keys are bound to besides the period: the server block and
/// its certificate (SHA-256 of both), the same in every worker.
pub(super) fn ticket_scope(block: u64, key: &CertifiedKey) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&block.to_be_bytes());
    if let Some(leaf) = key.cert.first() {
        ctx.update(leaf);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The random secret all workers derive ticket keys from, made once per
/// process. A restart makes a new one, so tickets do not outlive the process.
pub(super) fn secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        SystemRandom::new().fill(&mut s).expect("system random");
        s
    })
}

/// Session tickets sealed with AES-256-GCM under a key derived (HKDF-SHA256)
/// from the process secret, the rotation period and the scope (server block
/// and certificate). Any
/// worker derives the same key, so no key table is shared or locked.
///
/// A ticket is `period (8 bytes) | nonce (12) | ciphertext | tag (16)`; the
/// period is authenticated as associated data.
#[derive(Debug)]
pub struct Tickets {
    secret: [u8; 32],
    scope: [u8; 32],
    rng: SystemRandom,
}

impl Tickets {
    pub fn new(secret: [u8; 32], scope: [u8; 32]) -> Tickets {
        Tickets {
            secret,
            scope,
            rng: SystemRandom::new(),
        }
    }

    fn key(&self, period: u64) -> aead::LessSafeKey {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"ringway session ticket keys");
        let prk = salt.extract(&self.secret);
        let period = period.to_be_bytes();
        let info = [&period[..], &self.scope[..]];
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .expect("AES-256 key length is within HKDF's limit");
        aead::LessSafeKey::new(aead::UnboundKey::from(okm))
    }

    fn seal_at(&self, period: u64, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(8 + 12 + plain.len() + 16);
        out.extend_from_slice(&period.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key(period)
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(period.to_be_bytes()),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn open_at(&self, now_period: u64, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < 8 + 12 + 16 {
            return None;
        }
        let period = u64::from_be_bytes(ticket[..8].try_into().ok()?);
        // The current period's key, or the one before: nothing older.
        if period != now_period && period.checked_add(1) != Some(now_period) {
            return None;
        }
        let nonce = aead::Nonce::try_assume_unique_for_key(&ticket[8..20]).ok()?;
        let mut body = ticket[20..].to_vec();
        let plain = self
            .key(period)
            .open_in_place(nonce, aead::Aad::from(period.to_be_bytes()), &mut body)
            .ok()?;
        let n = plain.len();
        body.truncate(n);
        Some(body)
    }
}

impl rustls::server::ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_PERIOD_SECS as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(unix_now() / TICKET_PERIOD_SECS, plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(unix_now() / TICKET_PERIOD_SECS, cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_across_workers_and_expire_after_two_periods() {
        let secret = [7u8; 32];
        let a = Tickets::new(secret, [0; 32]);
        let b = Tickets::new(secret, [0; 32]);
        let t = a.seal_at(100, b"session state").unwrap();
        assert_eq!(b.open_at(100, &t).as_deref(), Some(&b"session state"[..]));
        assert_eq!(b.open_at(101, &t).as_deref(), Some(&b"session state"[..]));
        assert_eq!(b.open_at(102, &t), None, "older than the previous period");
        assert_eq!(b.open_at(99, &t), None, "from the future");
        // Another block or certificate, or another process secret, cannot open it.
        assert_eq!(Tickets::new(secret, [1; 32]).open_at(100, &t), None);
        assert_eq!(Tickets::new([8u8; 32], [0; 32]).open_at(100, &t), None);
        // Tampering anywhere fails.
        for i in [0, 8, 20, t.len() - 1] {
            let mut bad = t.clone();
            bad[i] ^= 1;
            assert_eq!(b.open_at(100, &bad), None, "byte {i}");
        }
        assert_eq!(b.open_at(100, &t[..30]), None);
        // Two tickets for the same state differ (fresh nonces).
        assert_ne!(a.seal_at(100, b"x"), a.seal_at(100, b"x"));
    }
}
